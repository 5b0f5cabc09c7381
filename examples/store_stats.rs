//! What a state folder's store holds, by kind of key: how many values and
//! their bytes (the figures behind BENCHMARKS.md's disk ratios).
//!
//! ```text
//! store_stats STATE_DIR/db
//! ```

use std::collections::BTreeMap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: store_stats DB_DIR")?;
    let db = sled::Config::new().path(path).open()?;
    for name in db.tree_names() {
        let tree = db.open_tree(&name)?;
        // Keys are "PREFIX\0..."; per-target maps "t\0TARGET\0KIND\0...".
        let mut by_kind: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
        for item in tree.iter() {
            let (key, value) = item?;
            let mut parts = key.split(|&b| b == 0);
            let prefix = String::from_utf8_lossy(parts.next().unwrap_or_default()).to_string();
            let label = match prefix.as_str() {
                "t" | "p" => {
                    let target = String::from_utf8_lossy(parts.next().unwrap_or_default());
                    format!("{prefix} {target}")
                }
                _ => prefix,
            };
            let entry = by_kind.entry(label).or_default();
            entry.0 += 1;
            entry.1 += value.len() as u64;
            entry.2 = entry.2.max(value.len() as u64);
        }
        println!("tree {}", String::from_utf8_lossy(&name));
        for (label, (count, bytes, largest)) in by_kind {
            println!(
                "  {label:<16} {count:>8} values {:>10.1} MB  largest {:>8.1} KB",
                bytes as f64 / 1e6,
                largest as f64 / 1e3
            );
        }
    }
    println!(
        "sled size_on_disk {:.1} MB",
        db.size_on_disk()? as f64 / 1e6
    );
    Ok(())
}
