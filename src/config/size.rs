//! Sizes written as people write them: `"1GiB"`, `"500 MB"`, `"64k"`, or a
//! plain number of bytes.

use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const GIB: ByteSize = ByteSize(1 << 30);
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        match UNITS
            .iter()
            .find(|(unit, _)| self.0 >= *unit && self.0.is_multiple_of(*unit))
        {
            Some((unit, name)) => write!(f, "{} {name}", self.0 / unit),
            None => write!(f, "{} bytes", self.0),
        }
    }
}

/// `text` as a size above 0: a number, then optionally a unit (`B`, `k`/`KB`
/// 1000, `KiB` 1024, and so on up to `T`/`TB`/`TiB`, any case).
pub fn parse(text: &str) -> Option<ByteSize> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => return None,
    };
    number
        .checked_mul(factor)
        .filter(|&bytes| bytes > 0)
        .map(ByteSize)
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bytes(i64),
            Text(String),
        }
        let (parsed, shown) = match Written::deserialize(deserializer)? {
            Written::Bytes(bytes) => (
                u64::try_from(bytes).ok().filter(|&b| b > 0).map(ByteSize),
                bytes.to_string(),
            ),
            Written::Text(text) => (parse(&text), format!("{text:?}")),
        };
        parsed.ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{shown} is not a size above 0 like \"1GiB\", \"500MB\" or a number of bytes"
            ))
        })
    }
}

/// Why a file of `size` bytes is refused under `limit`, if it is.
pub fn too_big(size: u64, limit: ByteSize) -> Option<String> {
    (size > limit.0).then(|| {
        format!(
            "the file is {size} bytes, more than max_file_size allows ({limit}): it was not read; raise this source's max_file_size if such files are expected"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse("1GiB"), Some(ByteSize::GIB));
        assert_eq!(parse("500 MB"), Some(ByteSize(500_000_000)));
        assert_eq!(parse("64k"), Some(ByteSize(64_000)));
        assert_eq!(parse("2048"), Some(ByteSize(2048)));
        assert_eq!(parse("3 kib"), Some(ByteSize(3072)));
        for bad in [
            "",
            "0",
            "1.5GB",
            "GB",
            "12 parsecs",
            "-1",
            "99999999999999TiB",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(ByteSize::GIB.to_string(), "1 GiB");
        assert_eq!(ByteSize(1500).to_string(), "1500 bytes");
        assert!(too_big(1 << 30, ByteSize::GIB).is_none());
        let said = too_big((1 << 30) + 1, ByteSize::GIB).unwrap();
        assert!(
            said.contains("1073741825 bytes") && said.contains("(1 GiB)"),
            "{said}"
        );
    }

    #[test]
    fn a_size_in_the_config_is_a_number_or_a_text() {
        #[derive(Deserialize)]
        struct T {
            size: ByteSize,
        }
        let read = |text: &str| toml::from_str::<T>(text).map(|t| t.size);
        assert_eq!(read("size = 4096").unwrap(), ByteSize(4096));
        assert_eq!(read("size = \"2GiB\"").unwrap(), ByteSize(2 << 30));
        for bad in ["size = 0", "size = -5", "size = \"lots\"", "size = 1.5"] {
            let error = read(bad).unwrap_err().to_string();
            assert!(
                error.contains("is not a size above 0") || bad.contains("1.5"),
                "{bad}: {error}"
            );
        }
    }
}
