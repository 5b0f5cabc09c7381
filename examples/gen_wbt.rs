//! Writes a WBT users export of N users, deterministic for a given N:
//! `cargo run --release --example gen_wbt -- 1000000 /tmp/users.csv [CHANGED_PERCENT]`.
//! With CHANGED_PERCENT, that share of the users (evenly spread) get a new
//! e-mail address: the same population, a later export.
//! Rows look like a real HR export (accents, managers, roles, dates) and
//! average about 240 bytes.

use std::io::{BufWriter, Write};

const FIRST: &[&str] = &[
    "Jean",
    "Hélène",
    "François",
    "Zoé",
    "Amélie",
    "Noé",
    "Chloé",
    "Léo",
    "Inès",
    "Gaël",
    "Maëlle",
    "Jérôme",
];
const LAST: &[&str] = &[
    "Lefèvre", "Dupont", "Moreau", "Bœuf", "Çelik", "Nguyễn", "Martin", "Bernard", "Rousseau",
    "Lambert", "Fontaine", "Mercier",
];
const CITY: &[&str] = &[
    "Lyon",
    "Paris",
    "Marseille",
    "Saint-Étienne",
    "Besançon",
    "Orléans",
    "Nîmes",
    "Aix-en-Provence",
];
const STREET: &[&str] = &[
    "rue de la République",
    "avenue Jean Jaurès",
    "boulevard Gambetta",
    "place Bellecour",
    "chemin des Écoliers",
];
const ROLES: &[&str] = &[
    "learner",
    "learner||tutor",
    "manager||learner",
    "hr||learner||reviewer",
];

/// xorshift64*: enough randomness for test data, identical on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let path = args.next().unwrap_or_else(|| "users.csv".to_string());
    let changed_percent: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    // Every `every`-th user is changed (4 % → one in 25).
    let every = if changed_percent == 0 {
        0
    } else {
        100 / changed_percent.min(100)
    };
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    writeln!(
        out,
        "user_extid;user_lname;user_fname;user_tname;user_login;org_extid;user_email;user_disable;\
         user_culture;birth_date;user_activation_date;user_expiration_date;user_manager_extid;\
         user_address1;user_zip;user_city;user_country;user_phone;user_cellphone;user_udtf1;user_roles;user_audiences"
    )?;
    for i in 0..count {
        let first = rng.pick(FIRST);
        let last = rng.pick(LAST);
        let manager = if i < 10 {
            String::new()
        } else {
            format!("E{:07}", rng.next() % i)
        };
        let disabled = u8::from(rng.next().is_multiple_of(50));
        let expiration = if rng.next().is_multiple_of(20) {
            "2027/06/30"
        } else {
            ""
        };
        writeln!(
            out,
            "E{i:07};{last};{first};{title};{login}{i};ORG{org:04};{login}{i}@{domain};{disabled};fr-FR;\
             {year}/{month:02}/{day:02};2020/01/01;{expiration};{manager};{num} {street};{zip:05};{city};France;\
             +33 4 {p1:02} {p2:02} {p3:02} {p4:02};+33 6 {p2:02} {p1:02} {p4:02} {p3:02};CC-{cc:05};{roles};AUD{aud:03}",
            title = if rng.next().is_multiple_of(2) {
                "M."
            } else {
                "Mme"
            },
            login = first
                .chars()
                .next()
                .map_or(String::new(), |c| c.to_lowercase().collect())
                + &last.to_lowercase(),
            domain = if every > 0 && i % every == 0 {
                "nouveau-domaine.fr"
            } else {
                "exemple-entreprise.fr"
            },
            org = rng.next() % 2000,
            year = 1960 + rng.next() % 45,
            month = 1 + rng.next() % 12,
            day = 1 + rng.next() % 28,
            num = 1 + rng.next() % 200,
            street = rng.pick(STREET),
            zip = 1000 + rng.next() % 94000,
            city = rng.pick(CITY),
            p1 = rng.next() % 100,
            p2 = rng.next() % 100,
            p3 = rng.next() % 100,
            p4 = rng.next() % 100,
            cc = rng.next() % 100_000,
            roles = rng.pick(ROLES),
            aud = rng.next() % 300,
        )?;
    }
    out.flush()
}
