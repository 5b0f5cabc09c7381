//! Writes a WBT users export of N users, deterministic for a given N:
//! `cargo run --release --example gen_wbt -- 1000000 /tmp/users.csv [CHANGED [LEAVERS HIRES]]`.
//! With CHANGED (a percentage), that share of the users (evenly spread) get a
//! new e-mail address: the same population, a later export. With LEAVERS and
//! HIRES as well (percentages of N, e.g. `4 1 1`, issue 12's later file),
//! that share of the users leave (their rows are gone: never one of the
//! changed users, nor anyone's manager, so every manager reference still
//! resolves) and that many new users are appended (ids from N up, managed by
//! users still there). Without them the output is byte for byte what it was.
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

/// One user's row, drawn from the generator in a fixed order: the i-th
/// user is the same in every file generated with the same N.
struct User {
    first: &'static str,
    last: &'static str,
    manager: Option<u64>,
    disabled: u8,
    expiration: &'static str,
    title: &'static str,
    org: u64,
    year: u64,
    month: u64,
    day: u64,
    num: u64,
    street: &'static str,
    zip: u64,
    city: &'static str,
    phone: [u64; 4],
    cc: u64,
    roles: &'static str,
    aud: u64,
}

impl User {
    fn draw(rng: &mut Rng, i: u64) -> User {
        let first = rng.pick(FIRST);
        let last = rng.pick(LAST);
        let manager = (i >= 10).then(|| rng.next() % i);
        let disabled = u8::from(rng.next().is_multiple_of(50));
        let expiration = if rng.next().is_multiple_of(20) {
            "2027/06/30"
        } else {
            ""
        };
        User {
            first,
            last,
            manager,
            disabled,
            expiration,
            title: if rng.next().is_multiple_of(2) {
                "M."
            } else {
                "Mme"
            },
            org: rng.next() % 2000,
            year: 1960 + rng.next() % 45,
            month: 1 + rng.next() % 12,
            day: 1 + rng.next() % 28,
            num: 1 + rng.next() % 200,
            street: rng.pick(STREET),
            zip: 1000 + rng.next() % 94000,
            city: rng.pick(CITY),
            phone: [
                rng.next() % 100,
                rng.next() % 100,
                rng.next() % 100,
                rng.next() % 100,
            ],
            cc: rng.next() % 100_000,
            roles: rng.pick(ROLES),
            aud: rng.next() % 300,
        }
    }

    fn write(&self, out: &mut impl Write, i: u64, new_domain: bool) -> std::io::Result<()> {
        let manager = self.manager.map_or(String::new(), |m| format!("E{m:07}"));
        let [p1, p2, p3, p4] = self.phone;
        writeln!(
            out,
            "E{i:07};{last};{first};{title};{login}{i};ORG{org:04};{login}{i}@{domain};{disabled};fr-FR;\
             {year}/{month:02}/{day:02};2020/01/01;{expiration};{manager};{num} {street};{zip:05};{city};France;\
             +33 4 {p1:02} {p2:02} {p3:02} {p4:02};+33 6 {p2:02} {p1:02} {p4:02} {p3:02};CC-{cc:05};{roles};AUD{aud:03}",
            last = self.last,
            first = self.first,
            title = self.title,
            login = self
                .first
                .chars()
                .next()
                .map_or(String::new(), |c| c.to_lowercase().collect())
                + &self.last.to_lowercase(),
            org = self.org,
            domain = if new_domain {
                "nouveau-domaine.fr"
            } else {
                "exemple-entreprise.fr"
            },
            disabled = self.disabled,
            year = self.year,
            month = self.month,
            day = self.day,
            expiration = self.expiration,
            num = self.num,
            street = self.street,
            zip = self.zip,
            city = self.city,
            cc = self.cc,
            roles = self.roles,
            aud = self.aud,
        )
    }
}

const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// Every `every`-th user (`percent` of them, 0: none).
fn every(percent: u64) -> u64 {
    if percent == 0 {
        0
    } else {
        100 / percent.min(100)
    }
}

/// The leavers: one user in each run of `every` ids (from the middle of the
/// run on, wrapping), the first that is neither changed nor anyone's manager
/// (nor one of the ten first, who have no manager). A run where every user
/// manages someone has no leaver: the count can be slightly under the share.
fn leavers(count: u64, every: u64, changed_every: u64) -> Vec<bool> {
    let mut leaves = vec![false; count as usize];
    if every == 0 {
        return leaves;
    }
    let mut manages = vec![false; count as usize];
    let mut rng = Rng(SEED);
    for i in 0..count {
        if let Some(m) = User::draw(&mut rng, i).manager {
            manages[m as usize] = true;
        }
    }
    let changed = |i: u64| changed_every > 0 && i.is_multiple_of(changed_every);
    for start in (0..count).step_by(every as usize) {
        let len = every.min(count - start);
        let chosen = (0..len)
            .map(|k| start + (len / 2 + k) % len)
            .find(|&i| i >= 10 && !manages[i as usize] && !changed(i));
        if let Some(i) = chosen {
            leaves[i as usize] = true;
        }
    }
    leaves
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let path = args.next().unwrap_or_else(|| "users.csv".to_string());
    let mut percent = || -> u64 { args.next().and_then(|n| n.parse().ok()).unwrap_or(0) };
    let (changed_percent, leavers_percent, hires_percent) = (percent(), percent(), percent());
    // Every `changed_every`-th user is changed (4 % → one in 25).
    let changed_every = every(changed_percent);
    let leaves = leavers(count, every(leavers_percent), changed_every);
    let hires = count * hires_percent.min(100) / 100;
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    let mut rng = Rng(SEED);
    writeln!(
        out,
        "user_extid;user_lname;user_fname;user_tname;user_login;org_extid;user_email;user_disable;\
         user_culture;birth_date;user_activation_date;user_expiration_date;user_manager_extid;\
         user_address1;user_zip;user_city;user_country;user_phone;user_cellphone;user_udtf1;user_roles;user_audiences"
    )?;
    let (mut changed, mut left) = (0u64, 0u64);
    for i in 0..count {
        let user = User::draw(&mut rng, i);
        if leaves[i as usize] {
            left += 1;
            continue;
        }
        let new_domain = changed_every > 0 && i.is_multiple_of(changed_every);
        changed += u64::from(new_domain);
        user.write(&mut out, i, new_domain)?;
    }
    // Hires: new ids after the population's, drawn on from the same generator;
    // a manager that left is replaced by the nearest earlier user still there.
    for i in count..count + hires {
        let mut user = User::draw(&mut rng, i);
        if let Some(m) = user.manager.as_mut() {
            while *m < count && leaves[*m as usize] {
                *m -= 1;
            }
        }
        user.write(&mut out, i, false)?;
    }
    out.flush()?;
    if leavers_percent > 0 || hires_percent > 0 {
        eprintln!(
            "{path}: {} rows: {changed} changed, {left} leavers, {hires} hires",
            count - left + hires
        );
    }
    Ok(())
}
