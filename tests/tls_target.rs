//! A target served over HTTPS with a certificate of a private CA made at
//! test time (`support::fakes::tls`, in front of the Collaborator fake):
//! refused by its certificate unless the CA is given with `ca_file`, and a
//! `ca_file` that holds no certificate refused by `rostersync check`.

mod support;

use std::time::Duration;

use support::fakes::collaborator::Fake;
use support::fakes::tls;
use support::*;

/// The portal behind its HTTPS front; the target's `url` is the front's.
fn setup() -> (Harness<Fake>, tls::Front) {
    let fake = Fake::start(TOKEN);
    let front = tls::Front::start(&fake.url);
    let h = Harness::builder()
        .fake(fake)
        .daemon("grace", "1s")
        .source(
            Source::users("users", "inbox")
                .set("settle", "200ms")
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .url(&front.url)
                .token_env("LMS_TOKEN", TOKEN)
                .fast(),
        )
        .build();
    (h, front)
}

/// Names the CA file in the target (before its other keys).
fn trust(h: &Harness<Fake>, pem: &str) {
    std::fs::write(h.path("ca.pem"), pem).unwrap();
    h.rewrite_config(|c| c.replace("[[target]]\n", "[[target]]\nca_file = \"ca.pem\"\n"));
}

fn untrusted(front: &tls::Front) -> String {
    format!(
        "the server's certificate at {} is not trusted (invalid peer certificate: UnknownIssuer): \
         if a private CA signed it, set the target's ca_file to that CA's certificate (PEM)",
        front.url
    )
}

#[test]
fn without_its_ca_file_the_target_is_refused_by_its_certificate_and_gets_nothing() {
    let (mut h, front) = setup();
    let (code, out, err) = h.sync_rows("inbox", "u", USERS_HEADER, &[user(1, false)]);
    assert_eq!(code, 1, "{out}{err}");
    // Named: the target, its URL, why, what to do; the token never (sync_file checks).
    assert!(
        out.contains("target lms: 1 create")
            && out.contains(&format!("  STOPPED: {}", untrusted(&front))),
        "{out}"
    );
    assert_eq!(h.fake.requests(), 0, "nothing reached the portal");
    assert_eq!(front.handshakes(), 0);
    // Stopped at the first refusal: not tried again and again until the
    // retry budget runs out (it was, some thousand handshakes in 10 s).
    assert!(
        (1..=2).contains(&front.refused()),
        "{} handshakes",
        front.refused()
    );

    let (code, out, err) = h.run(&["check", "--online"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(&format!(
            "target lms (collaborator) at {}: {}",
            front.url,
            untrusted(&front)
        )),
        "{out}"
    );
    assert!(!out.contains(TOKEN) && !err.contains(TOKEN));
    assert_eq!(h.fake.requests(), 0);
}

#[test]
fn with_its_ca_file_the_target_is_reached_and_gets_its_records() {
    let (mut h, front) = setup();
    trust(&h, &front.ca_pem);
    let (code, out, err) = h.run(&["check", "--online"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "target lms (collaborator): ok\nok\n"),
        "{err}"
    );
    let (code, out, err) = h.sync_rows(
        "inbox",
        "u",
        USERS_HEADER,
        &[user(1, false), user(2, false)],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(h.fake.directory().len(), 2);
    assert!(front.handshakes() >= 1);
    assert_eq!(front.refused(), 0);
}

#[test]
fn the_daemon_holds_the_target_until_its_ca_file_is_given_and_reloaded() {
    let (h, front) = setup();
    let daemon = h.start();
    h.drop_file(
        "inbox/u.csv",
        &users_file(&[user(1, false), user(2, false)]),
    );
    let stopped = format!("stopped: {}", untrusted(&front));
    wait_until(
        Duration::from_secs(20),
        || {
            h.run(&["status"])
                .1
                .contains(&format!("last error: {stopped}; nothing more is sent"))
        },
        || format!("{}\n{}", h.run(&["status"]).1, daemon.log()),
    );
    let (_, out, _) = h.run(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let lms = &status["targets"]["lms"];
    assert_eq!(
        (lms["outbox"].as_u64(), lms["parked"].as_u64()),
        (Some(2), Some(0)),
        "waiting, not parked: {status}"
    );
    assert_eq!(h.fake.requests(), 0);

    trust(&h, &front.ca_pem);
    daemon.signal("HUP");
    wait_until(
        Duration::from_secs(20),
        || h.fake.directory().len() == 2,
        || daemon.log(),
    );
    let (stopped, log) = daemon.stop();
    assert!(stopped.success(), "{log}");
    assert!(!log.contains(TOKEN));
}

#[test]
fn a_ca_file_that_is_not_a_certificate_is_refused_by_check() {
    let (h, front) = setup();
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let garbage =
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    let cases = [
        (
            "not a certificate\n",
            "holds no certificate: the PEM file of the CA (\"-----BEGIN CERTIFICATE-----\") is expected",
        ),
        (key.as_str(), "holds no certificate"),
        (
            garbage,
            "certificate 1 of the file is not one a client can trust",
        ),
    ];
    trust(&h, "placeholder");
    for (pem, says) in cases {
        std::fs::write(h.path("ca.pem"), pem).unwrap();
        let (code, out, err) = h.run(&["check"]);
        assert_eq!(code, 2, "{pem}: {out}{err}");
        let line = h
            .config()
            .lines()
            .position(|l| l.starts_with("ca_file"))
            .unwrap()
            + 1;
        let expected = format!("config.toml:{line}:11: ca_file ./ca.pem: {says}");
        assert!(
            out.contains(&expected) || err.contains(&expected),
            "{pem}:\n{out}{err}\nnot\n{expected}"
        );
        // Nothing is sent with it either.
        let (code, out, err) = h.sync_file(&h.write("inbox/u.csv", &users_file(&[user(1, false)])));
        assert_ne!(code, 0, "{out}{err}");
    }
    assert_eq!(h.fake.requests(), 0);
    // The real one passes.
    std::fs::write(h.path("ca.pem"), &front.ca_pem).unwrap();
    let (code, out, err) = h.run(&["check"]);
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
}
