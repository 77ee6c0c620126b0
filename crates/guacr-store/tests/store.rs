#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The store against both backends (SQLite temp file, fresh PostgreSQL database).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::{each_backend, raw};
use guacr_store::*;
use sqlx::Row;

fn key() -> SecretKey {
    SecretKey::parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f").unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
}

async fn open(url: &str) -> Store {
    Store::open(url, Some(key())).await.unwrap()
}

async fn open_clock(url: &str, clock: Arc<ManualClock>, lockout: LockoutPolicy) -> Store {
    Store::open_with(
        url,
        Some(key()),
        StoreOptions {
            clock,
            lockout,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

fn new_user(name: &str, pw: &str) -> NewUser {
    NewUser {
        username: name.into(),
        password: Some(pw.into()),
        ..Default::default()
    }
}

fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn conn(name: &str, group: &str, kv: &[(&str, &str)]) -> NewConnection {
    NewConnection {
        name: name.into(),
        protocol: "ssh".into(),
        group: group.into(),
        description: String::new(),
        params: params(kv),
    }
}

#[tokio::test]
async fn user_crud() {
    each_backend("user_crud", |url| async move {
        let s = open(&url).await;
        let alice = s.create_user(&new_user("Alice", "pw-alice")).await.unwrap();
        assert_eq!(alice.username, "Alice");
        assert_eq!(alice.display_name, "Alice");
        assert!(!alice.admin && !alice.disabled && !alice.totp_enabled);
        assert!(alice.last_login.is_none());
        // Case-insensitive uniqueness and lookup.
        let e = s.create_user(&new_user("alice", "x")).await.unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
        assert_eq!(s.user_by_name("ALICE").await.unwrap().unwrap().id, alice.id);
        assert_eq!(s.get_user(alice.id).await.unwrap().unwrap(), alice);
        assert!(s.get_user(alice.id + 1000).await.unwrap().is_none());
        let bob = s
            .create_user(&NewUser {
                username: "bob".into(),
                display_name: "Bob B.".into(),
                admin: true,
                ..Default::default()
            })
            .await
            .unwrap();
        let names: Vec<_> = s
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(names, ["Alice", "bob"]);
        // Update.
        let b2 = s
            .update_user(
                bob.id,
                &UserUpdate {
                    username: Some("robert".into()),
                    disabled: Some(true),
                    admin: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (b2.username.as_str(), b2.display_name.as_str()),
            ("robert", "Bob B.")
        );
        assert!(b2.disabled && !b2.admin);
        let e = s
            .update_user(
                bob.id,
                &UserUpdate {
                    username: Some("ALICE".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)));
        assert!(matches!(
            s.update_user(9999, &UserUpdate::default()).await,
            Err(Error::NotFound(_))
        ));
        // Bad names are refused with a message.
        for bad in ["", " padded", "new\nline", "tab\there"] {
            let e = s.create_user(&new_user(bad, "x")).await.unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{bad:?}: {e}");
        }
        let long = "x".repeat(129);
        assert!(matches!(
            s.create_user(&new_user(&long, "x")).await,
            Err(Error::Invalid(_))
        ));
        // Delete.
        assert!(s.delete_user(bob.id).await.unwrap());
        assert!(!s.delete_user(bob.id).await.unwrap());
        assert_eq!(s.list_users().await.unwrap().len(), 1);
        s.close().await;
    })
    .await;
}

#[tokio::test]
async fn password_verify_and_login() {
    each_backend("password_verify", |url| async move {
        let clock = ManualClock::new(t0());
        let s = open_clock(&url, clock.clone(), LockoutPolicy::default()).await;
        let u = s
            .create_user(&new_user("carol", "correct horse"))
            .await
            .unwrap();
        // Stored as argon2id, never the plaintext.
        let mut c = raw(&url).await;
        let h: String = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
            .bind(u.id)
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get("password_hash");
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(s.check_password(u.id, "correct horse").await.unwrap());
        assert!(!s.check_password(u.id, "correct horsE").await.unwrap());
        match s
            .authenticate("CAROL", "correct horse", None)
            .await
            .unwrap()
        {
            LoginOutcome::Success(user) => {
                assert_eq!(user.id, u.id);
                assert_eq!(user.last_login, Some(t0()));
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(
            s.authenticate("carol", "wrong", None).await.unwrap(),
            LoginOutcome::InvalidCredentials
        );
        assert_eq!(
            s.authenticate("nobody", "wrong", None).await.unwrap(),
            LoginOutcome::InvalidCredentials
        );
        // Password change.
        s.set_password(u.id, "new pass", true).await.unwrap();
        assert!(
            s.get_user(u.id)
                .await
                .unwrap()
                .unwrap()
                .must_change_password
        );
        assert_eq!(
            s.authenticate("carol", "correct horse", None)
                .await
                .unwrap(),
            LoginOutcome::InvalidCredentials
        );
        assert!(matches!(
            s.authenticate("carol", "new pass", None).await.unwrap(),
            LoginOutcome::Success(_)
        ));
        // Disabled users cannot log in (with the right password).
        s.update_user(
            u.id,
            &UserUpdate {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            s.authenticate("carol", "new pass", None).await.unwrap(),
            LoginOutcome::Disabled
        );
        // A user without a password cannot log in with any.
        s.create_user(&NewUser {
            username: "oidc-only".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(
            s.authenticate("oidc-only", "", None).await.unwrap(),
            LoginOutcome::InvalidCredentials
        );
        s.close().await;
    })
    .await;
}

#[tokio::test]
async fn lockout_after_failures_and_unlock_after_period() {
    each_backend("lockout", |url| async move {
        let clock = ManualClock::new(t0());
        let policy = LockoutPolicy {
            max_failures: 3,
            lock_duration: Duration::from_secs(600),
        };
        let s = open_clock(&url, clock.clone(), policy).await;
        let u = s.create_user(&new_user("dave", "right")).await.unwrap();
        for _ in 0..2 {
            assert_eq!(
                s.authenticate("dave", "bad", None).await.unwrap(),
                LoginOutcome::InvalidCredentials
            );
        }
        assert_eq!(s.get_user(u.id).await.unwrap().unwrap().failed_logins, 2);
        let until = t0() + chrono::Duration::seconds(600);
        assert_eq!(
            s.authenticate("dave", "bad", None).await.unwrap(),
            LoginOutcome::Locked { until }
        );
        // Even the right password is refused while locked.
        assert_eq!(
            s.authenticate("dave", "right", None).await.unwrap(),
            LoginOutcome::Locked { until }
        );
        clock.advance(Duration::from_secs(599));
        assert_eq!(
            s.authenticate("dave", "right", None).await.unwrap(),
            LoginOutcome::Locked { until }
        );
        clock.advance(Duration::from_secs(2));
        assert!(matches!(
            s.authenticate("dave", "right", None).await.unwrap(),
            LoginOutcome::Success(_)
        ));
        let after = s.get_user(u.id).await.unwrap().unwrap();
        assert_eq!((after.failed_logins, after.locked_until), (0, None));
        // Counting starts afresh; a success resets it.
        assert_eq!(
            s.authenticate("dave", "bad", None).await.unwrap(),
            LoginOutcome::InvalidCredentials
        );
        assert!(matches!(
            s.authenticate("dave", "right", None).await.unwrap(),
            LoginOutcome::Success(_)
        ));
        assert_eq!(s.get_user(u.id).await.unwrap().unwrap().failed_logins, 0);
        // An admin unlock works at once.
        for _ in 0..3 {
            s.authenticate("dave", "bad", None).await.unwrap();
        }
        assert!(matches!(
            s.authenticate("dave", "right", None).await.unwrap(),
            LoginOutcome::Locked { .. }
        ));
        s.unlock_user(u.id).await.unwrap();
        assert!(matches!(
            s.authenticate("dave", "right", None).await.unwrap(),
            LoginOutcome::Success(_)
        ));
        s.close().await;
    })
    .await;
}

#[tokio::test]
async fn totp_rfc6238_vector_and_enrolment() {
    each_backend("totp", |url| async move {
        // RFC 6238 appendix B: secret "12345678901234567890", T = 1111111109 → 07081804.
        let clock = ManualClock::new(Utc.timestamp_opt(1_111_111_109, 0).unwrap());
        let s = open_clock(&url, clock.clone(), LockoutPolicy::default()).await;
        let u = s.create_user(&new_user("erin", "pw")).await.unwrap();
        s.totp_set_secret(u.id, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
            .await
            .unwrap();
        assert!(s.get_user(u.id).await.unwrap().unwrap().totp_enabled);
        // The secret is encrypted at rest.
        let mut c = raw(&url).await;
        let stored: String = sqlx::query("SELECT totp_secret FROM users WHERE id = $1")
            .bind(u.id)
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get("totp_secret");
        assert!(!stored.contains("GEZDGNBV"), "{stored}");
        assert_eq!(
            s.authenticate("erin", "pw", None).await.unwrap(),
            LoginOutcome::TotpRequired
        );
        assert_eq!(
            s.authenticate("erin", "pw", Some("000000")).await.unwrap(),
            LoginOutcome::InvalidCredentials
        );
        assert!(matches!(
            s.authenticate("erin", "pw", Some("081804")).await.unwrap(),
            LoginOutcome::Success(_)
        ));
        // A code is good once.
        assert_eq!(
            s.authenticate("erin", "pw", Some("081804")).await.unwrap(),
            LoginOutcome::InvalidCredentials
        );
        // The wrong password with the right code is still wrong.
        clock.advance(Duration::from_secs(30));
        let next = guacr_store::totp::code_at(b"12345678901234567890", clock.now().timestamp(), 6);
        assert_eq!(
            s.authenticate("erin", "nope", Some(&next)).await.unwrap(),
            LoginOutcome::InvalidCredentials
        );
        // ±1 step: the code of the next step is accepted now.
        let ahead =
            guacr_store::totp::code_at(b"12345678901234567890", clock.now().timestamp() + 30, 6);
        assert!(matches!(
            s.authenticate("erin", "pw", Some(&ahead)).await.unwrap(),
            LoginOutcome::Success(_)
        ));
        // Enrolment: pending until confirmed.
        let f = s.create_user(&new_user("frank", "pw")).await.unwrap();
        let e = s.totp_begin(f.id).await.unwrap();
        assert!(
            e.uri.starts_with("otpauth://totp/guacr:frank?secret="),
            "{}",
            e.uri
        );
        assert!(e.uri.contains(&e.secret_base32));
        assert!(matches!(
            s.authenticate("frank", "pw", None).await.unwrap(),
            LoginOutcome::Success(_)
        ));
        assert!(!s.totp_confirm(f.id, "12345").await.unwrap());
        let secret = guacr_store::totp::from_base32(&e.secret_base32).unwrap();
        clock.advance(Duration::from_secs(300));
        let code = guacr_store::totp::code_at(&secret, clock.now().timestamp(), 6);
        assert!(s.totp_confirm(f.id, &code).await.unwrap());
        assert_eq!(
            s.authenticate("frank", "pw", None).await.unwrap(),
            LoginOutcome::TotpRequired
        );
        clock.advance(Duration::from_secs(30));
        let code = guacr_store::totp::code_at(&secret, clock.now().timestamp(), 6);
        assert!(matches!(
            s.authenticate("frank", "pw", Some(&code)).await.unwrap(),
            LoginOutcome::Success(_)
        ));
        s.totp_disable(f.id).await.unwrap();
        assert!(matches!(
            s.authenticate("frank", "pw", None).await.unwrap(),
            LoginOutcome::Success(_)
        ));
        s.close().await;
    })
    .await;
}

#[tokio::test]
async fn legacy_md5_and_sha256_upgrade_to_argon2id() {
    each_backend("legacy", |url| async move {
        let s = open(&url).await;
        let mut c = raw(&url).await;
        for (name, kind, digest) in [
            (
                "md5user",
                LegacyHash::Md5,
                "5f4dcc3b5aa765d61d8327deb882cf99",
            ),
            (
                "shauser",
                LegacyHash::Sha256,
                "5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D8",
            ),
        ] {
            let u = s
                .create_user(&NewUser {
                    username: name.into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            s.set_legacy_password(u.id, kind, digest).await.unwrap();
            assert_eq!(
                s.authenticate(name, "Password", None).await.unwrap(),
                LoginOutcome::InvalidCredentials
            );
            assert!(matches!(
                s.authenticate(name, "password", None).await.unwrap(),
                LoginOutcome::Success(_)
            ));
            let row = sqlx::query("SELECT password_hash, legacy_hash FROM users WHERE id = $1")
                .bind(u.id)
                .fetch_one(&mut c)
                .await
                .unwrap();
            let ph: Option<String> = row.get("password_hash");
            let lh: Option<String> = row.get("legacy_hash");
            assert!(ph.unwrap().starts_with("$argon2id$"), "{name} not upgraded");
            assert_eq!(lh, None);
            assert!(matches!(
                s.authenticate(name, "password", None).await.unwrap(),
                LoginOutcome::Success(_)
            ));
        }
        let u = s.user_by_name("md5user").await.unwrap().unwrap();
        assert!(matches!(
            s.set_legacy_password(u.id, LegacyHash::Md5, "not-hex")
                .await,
            Err(Error::Invalid(_))
        ));
        s.close().await;
    })
    .await;
}

#[tokio::test]
async fn groups_and_permission_resolution() {
    each_backend("groups", |url| async move {
        let s = open(&url).await;
        let direct = s.create_user(&new_user("direct", "x")).await.unwrap();
        let member = s.create_user(&new_user("member", "x")).await.unwrap();
        let nobody = s.create_user(&new_user("nobody", "x")).await.unwrap();
        let admin = s
            .create_user(&NewUser {
                username: "root".into(),
                admin: true,
                ..Default::default()
            })
            .await
            .unwrap();
        let ops = s.create_group("Ops").await.unwrap();
        assert!(matches!(
            s.create_group("ops").await,
            Err(Error::Conflict(_))
        ));
        s.add_group_member(ops.id, member.id).await.unwrap();
        s.add_group_member(ops.id, member.id).await.unwrap(); // idempotent
        assert_eq!(
            s.get_group(ops.id).await.unwrap().unwrap().members,
            vec![member.id]
        );
        assert_eq!(s.user_groups(member.id).await.unwrap(), vec![ops.id]);
        let c1 = s
            .create_connection(&conn("one", "A", &[("hostname", "h1")]))
            .await
            .unwrap();
        let c2 = s
            .create_connection(&conn("two", "A/B", &[("hostname", "h2")]))
            .await
            .unwrap();
        let c3 = s
            .create_connection(&conn("three", "", &[("hostname", "h3")]))
            .await
            .unwrap();
        s.grant_user(c1.id, direct.id).await.unwrap();
        s.grant_group(c2.id, ops.id).await.unwrap();
        s.grant_user(c2.id, member.id).await.unwrap(); // direct and via group: listed once
        let ids = |v: Vec<ConnectionSummary>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.connections_for_user(direct.id).await.unwrap()),
            vec![c1.id]
        );
        assert_eq!(
            ids(s.connections_for_user(member.id).await.unwrap()),
            vec![c2.id]
        );
        assert!(s.connections_for_user(nobody.id).await.unwrap().is_empty());
        // Admins see everything, ordered by folder then name.
        assert_eq!(
            ids(s.connections_for_user(admin.id).await.unwrap()),
            vec![c3.id, c1.id, c2.id]
        );
        assert!(s.can_use_connection(direct.id, c1.id).await.unwrap());
        assert!(!s.can_use_connection(direct.id, c2.id).await.unwrap());
        assert!(s.can_use_connection(member.id, c2.id).await.unwrap());
        assert!(!s.can_use_connection(nobody.id, c3.id).await.unwrap());
        assert!(s.can_use_connection(admin.id, c3.id).await.unwrap());
        assert!(!s.can_use_connection(admin.id, 99999).await.unwrap());
        let p = s.connection_permissions(c2.id).await.unwrap();
        assert_eq!(
            p,
            Permissions {
                users: vec![member.id],
                groups: vec![ops.id]
            }
        );
        // Leaving the group removes access via it (the direct grant stays).
        s.revoke_user(c2.id, member.id).await.unwrap();
        s.remove_group_member(ops.id, member.id).await.unwrap();
        assert!(!s.can_use_connection(member.id, c2.id).await.unwrap());
        s.set_user_groups(member.id, &[ops.id]).await.unwrap();
        assert!(s.can_use_connection(member.id, c2.id).await.unwrap());
        // Disabled users get nothing.
        s.update_user(
            member.id,
            &UserUpdate {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(s.connections_for_user(member.id).await.unwrap().is_empty());
        assert!(!s.can_use_connection(member.id, c2.id).await.unwrap());
        // Replacing permissions; unknown ids are refused.
        s.set_connection_permissions(
            c3.id,
            &Permissions {
                users: vec![nobody.id],
                groups: vec![],
            },
        )
        .await
        .unwrap();
        assert_eq!(
            ids(s.connections_for_user(nobody.id).await.unwrap()),
            vec![c3.id]
        );
        assert!(matches!(
            s.set_connection_permissions(
                c3.id,
                &Permissions {
                    users: vec![424242],
                    groups: vec![]
                }
            )
            .await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            s.grant_group(c3.id, 424242).await,
            Err(Error::NotFound(_))
        ));
        // Deleting a group or a connection takes its grants along.
        assert!(s.delete_group(ops.id).await.unwrap());
        assert!(s.user_groups(member.id).await.unwrap().is_empty());
        assert!(s.delete_connection(c3.id).await.unwrap());
        assert!(s.connections_for_user(nobody.id).await.unwrap().is_empty());
        assert!(!s.delete_connection(c3.id).await.unwrap());
        // Groups list and rename.
        let g = s.create_group("Dev").await.unwrap();
        s.set_group_members(g.id, &[direct.id, nobody.id])
            .await
            .unwrap();
        let g = s.rename_group(g.id, "Developers").await.unwrap();
        assert_eq!(g.members.len(), 2);
        let all = s.list_groups().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].name, "Developers");
        assert_eq!(
            s.group_by_name("developers").await.unwrap().unwrap().id,
            g.id
        );
        s.close().await;
    })
    .await;
}

#[tokio::test]
async fn secrets_encrypted_at_rest() {
    each_backend("secrets", |url| async move {
        let s = open(&url).await;
        let key_pem =
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
        let c = s
            .create_connection(&conn(
                "db",
                "Servers",
                &[
                    ("hostname", "10.1.2.3"),
                    ("password", "hunter2-plaintext"),
                    ("private-key", key_pem),
                    ("passphrase", "pp-plaintext"),
                    ("host-key", "ssh-ed25519 AAAAPUB"),
                ],
            ))
            .await
            .unwrap();
        assert_eq!(c.params["password"], "hunter2-plaintext");
        assert_eq!(c.params["private-key"], key_pem);
        let secret: Vec<_> = c.secret_params.iter().cloned().collect();
        assert_eq!(secret, ["passphrase", "password", "private-key"]);
        assert_eq!(c.masked_params()["password"], SECRET_PLACEHOLDER);
        assert_eq!(c.masked_params()["hostname"], "10.1.2.3");
        assert!(!format!("{c:?}").contains("hunter2"));
        // Raw columns.
        let mut db = raw(&url).await;
        let rows = sqlx::query(
            "SELECT name, value, encrypted FROM connection_params WHERE connection_id = $1",
        )
        .bind(c.id)
        .fetch_all(&mut db)
        .await
        .unwrap();
        assert_eq!(rows.len(), 5);
        for r in rows {
            let (name, value, enc): (String, String, i64) =
                (r.get("name"), r.get("value"), r.get("encrypted"));
            match name.as_str() {
                "password" | "private-key" | "passphrase" => {
                    assert_eq!(enc, 1, "{name}");
                    assert!(
                        !value.contains("hunter2")
                            && !value.contains("OPENSSH")
                            && !value.contains("pp-plain")
                    );
                    assert!(value.starts_with("v1:"));
                }
                _ => assert_eq!(enc, 0, "{name}"),
            }
        }
        // The placeholder keeps the stored secret; a new value replaces it.
        let mut upd = conn(
            "db",
            "Servers",
            &[("hostname", "10.1.2.4"), ("password", SECRET_PLACEHOLDER)],
        );
        upd.description = "changed".into();
        let c2 = s.update_connection(c.id, &upd).await.unwrap();
        assert_eq!(c2.params["password"], "hunter2-plaintext");
        assert_eq!(c2.params["hostname"], "10.1.2.4");
        assert!(!c2.params.contains_key("private-key"));
        let upd = conn("db", "Servers", &[("password", "new-secret")]);
        assert_eq!(
            s.update_connection(c.id, &upd).await.unwrap().params["password"],
            "new-secret"
        );
        // The web layer's predicate (from the handler schemas).
        s.set_secret_predicate(Arc::new(|_p: &str, n: &str| n == "custom-field"));
        let c3 = s
            .create_connection(&conn(
                "x",
                "",
                &[("custom-field", "cf"), ("password", "pw")],
            ))
            .await
            .unwrap();
        assert_eq!(
            c3.secret_params.iter().collect::<Vec<_>>(),
            ["custom-field"]
        );
        s.close().await;
        drop(db);
        // Wrong key: a clear error; no key: refused because secrets exist.
        let other = SecretKey::generate().unwrap();
        let e = Store::open(&url, Some(other)).await.unwrap_err();
        assert!(matches!(e, Error::WrongKey), "{e}");
        assert!(e.to_string().contains("does not match"), "{e}");
        let e = Store::open(&url, None).await.unwrap_err();
        assert!(matches!(e, Error::KeyRequired), "{e}");
        assert!(e.to_string().contains("GUACR_SECRET_KEY"));
        // The right key still reads them.
        let s = open(&url).await;
        assert_eq!(
            s.get_connection(c.id).await.unwrap().unwrap().params["password"],
            "new-secret"
        );
        s.close().await;
    })
    .await;
}

#[tokio::test]
async fn without_a_key_secrets_cannot_be_written() {
    each_backend("nokey", |url| async move {
        let s = Store::open(&url, None).await.unwrap();
        assert!(!s.has_key());
        let e = s
            .create_connection(&conn("c", "", &[("password", "p")]))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::KeyRequired), "{e}");
        // Nothing secret: fine.
        s.create_connection(&conn("c", "", &[("hostname", "h")]))
            .await
            .unwrap();
        s.close().await;
    })
    .await;
}

#[tokio::test]
async fn audit_append_and_query() {
    each_backend("audit", |url| async move {
        let clock = ManualClock::new(t0());
        let s = open_clock(&url, clock.clone(), LockoutPolicy::default()).await;
        let mut ids = Vec::new();
        for (kind, user) in [
            (audit_kind::LOGIN_FAILURE, "Alice"),
            (audit_kind::LOGIN_SUCCESS, "alice"),
            (audit_kind::SESSION_START, "alice"),
            (audit_kind::SESSION_END, "bob"),
            (audit_kind::LOGIN_LOCKED, "bob"),
        ] {
            clock.advance(Duration::from_secs(10));
            let mut e = NewAuditEvent::new(kind);
            e.username = Some(user.into());
            e.remote_addr = Some("127.0.0.1".into());
            if kind == audit_kind::SESSION_END {
                e.connection_id = Some(7);
                e.connection_name = Some("web".into());
                e.protocol = Some("ssh".into());
                e.session_id = Some("$abc".into());
                e.bytes_in = Some(1234);
                e.bytes_out = Some(u64::MAX / 4);
                e.duration_ms = Some(5000);
                e.recording_path = Some("/rec/x.guac".into());
                e.detail = Some("closed".into());
            }
            ids.push(s.append_audit(&e).await.unwrap());
        }
        let all = s.query_audit(&AuditQuery::default()).await.unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(
            all.iter().map(|e| e.id).collect::<Vec<_>>(),
            ids.iter().rev().cloned().collect::<Vec<_>>()
        );
        assert_eq!(all[0].time, t0() + chrono::Duration::seconds(50));
        let end = &all[1];
        assert_eq!(end.kind, "session.end");
        assert_eq!(end.bytes_out, Some(u64::MAX / 4));
        assert_eq!(end.duration_ms, Some(5000));
        assert_eq!(end.recording_path.as_deref(), Some("/rec/x.guac"));
        assert_eq!(end.session_id.as_deref(), Some("$abc"));
        assert_eq!(all[4].connection_id, None);
        let q = |f: fn(&mut AuditQuery)| {
            let mut a = AuditQuery::default();
            f(&mut a);
            a
        };
        let kinds = |v: Vec<AuditEvent>| v.into_iter().map(|e| e.kind).collect::<Vec<_>>();
        assert_eq!(
            s.query_audit(&q(|a| a.limit = Some(2)))
                .await
                .unwrap()
                .len(),
            2
        );
        let page2 = s
            .query_audit(&AuditQuery {
                before: Some(ids[2]),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            page2.iter().map(|e| e.id).collect::<Vec<_>>(),
            [ids[1], ids[0]]
        );
        assert_eq!(
            kinds(
                s.query_audit(&q(|a| a.kind = Some("login.failure".into())))
                    .await
                    .unwrap()
            ),
            ["login.failure"]
        );
        assert_eq!(
            kinds(
                s.query_audit(&q(|a| a.kind = Some("login.".into())))
                    .await
                    .unwrap()
            ),
            ["login.locked", "login.success", "login.failure"]
        );
        assert_eq!(
            kinds(
                s.query_audit(&q(|a| a.kind = Some("session.*".into())))
                    .await
                    .unwrap()
            ),
            ["session.end", "session.start"]
        );
        // `%`/`_` are not wildcards.
        assert!(
            s.query_audit(&q(|a| a.kind = Some("%.".into())))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.query_audit(&q(|a| a.user = Some("ALICE".into())))
                .await
                .unwrap()
                .len(),
            3
        );
        let bob_login = AuditQuery {
            user: Some("bob".into()),
            kind: Some("login.".into()),
            ..Default::default()
        };
        assert_eq!(
            kinds(s.query_audit(&bob_login).await.unwrap()),
            ["login.locked"]
        );
        let old = AuditQuery {
            before_time: Some(t0() + chrono::Duration::seconds(25)),
            ..Default::default()
        };
        assert_eq!(s.query_audit(&old).await.unwrap().len(), 2);
        assert!(matches!(
            s.append_audit(&NewAuditEvent::new("")).await,
            Err(Error::Invalid(_))
        ));
        // Retention: events older than a time go, newer ones stay.
        let pruned = s
            .prune_audit(t0() + chrono::Duration::seconds(15))
            .await
            .unwrap();
        assert_eq!(pruned, 1);
        assert_eq!(
            s.query_audit(&AuditQuery::default()).await.unwrap().len(),
            4
        );
        // Authentication itself never writes the password anywhere in the audit.
        s.create_user(&new_user("gina", "pw-gina")).await.unwrap();
        s.authenticate("gina", "typo-secret-123", None)
            .await
            .unwrap();
        let mut db = raw(&url).await;
        let n = sqlx::query("SELECT id FROM audit_events WHERE detail LIKE '%typo-secret%'")
            .fetch_all(&mut db)
            .await
            .unwrap();
        assert!(n.is_empty());
        s.close().await;
    })
    .await;
}

#[tokio::test]
async fn injection_payloads_are_stored_verbatim() {
    each_backend("injection", |url| async move {
        let s = open(&url).await;
        let payloads = [
            "Robert'); DROP TABLE users;--",
            "<script>alert('x')</script>",
            "\" OR 1=1 --",
            "$1 ? :name %_ \\",
            "ünïcødé 名前 🙂",
        ];
        for (i, p) in payloads.iter().enumerate() {
            let u = s.create_user(&new_user(p, p)).await.unwrap();
            assert_eq!(u.username, *p);
            assert_eq!(s.user_by_name(p).await.unwrap().unwrap().id, u.id);
            assert!(matches!(
                s.authenticate(p, p, None).await.unwrap(),
                LoginOutcome::Success(_)
            ));
            let g = s.create_group(p).await.unwrap();
            assert_eq!(g.name, *p);
            let mut nc = conn(p, &format!("{p}/sub{i}"), &[(p, p), ("password", p)]);
            nc.description = p.to_string();
            let c = s.create_connection(&nc).await.unwrap();
            let back = s.get_connection(c.id).await.unwrap().unwrap();
            assert_eq!(back.name, *p);
            assert_eq!(back.description, *p);
            assert_eq!(back.group, format!("{p}/sub{i}"));
            assert_eq!(back.params[*p], *p);
            assert_eq!(back.params["password"], *p);
            let mut e = NewAuditEvent::new("admin.change");
            e.username = Some(p.to_string());
            e.detail = Some(p.to_string());
            s.append_audit(&e).await.unwrap();
            let got = s
                .query_audit(&AuditQuery {
                    user: Some(p.to_string()),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(got.len(), 1, "{p}");
            assert_eq!(got[0].detail.as_deref(), Some(*p));
        }
        // Every table is still there and complete.
        assert_eq!(s.list_users().await.unwrap().len(), payloads.len());
        assert_eq!(s.list_groups().await.unwrap().len(), payloads.len());
        assert_eq!(s.list_connections().await.unwrap().len(), payloads.len());
        s.close().await;
    })
    .await;
}

#[tokio::test]
async fn migrations_are_idempotent_and_data_survives_reopen() {
    each_backend("migrations", |url| async move {
        let s = open(&url).await;
        let pw = s
            .ensure_admin()
            .await
            .unwrap()
            .expect("first run creates admin");
        assert_eq!(pw.len(), 20);
        assert_eq!(s.ensure_admin().await.unwrap(), None);
        s.migrate().await.unwrap();
        s.migrate().await.unwrap();
        s.close().await;
        let s = open(&url).await;
        assert_eq!(s.ensure_admin().await.unwrap(), None);
        let admin = s.user_by_name(DEFAULT_ADMIN).await.unwrap().unwrap();
        assert!(admin.admin && admin.must_change_password);
        assert!(matches!(
            s.authenticate("admin", &pw, None).await.unwrap(),
            LoginOutcome::Success(_)
        ));
        let mut db = raw(&url).await;
        let applied = sqlx::query("SELECT version FROM _sqlx_migrations")
            .fetch_all(&mut db)
            .await
            .unwrap();
        assert_eq!(applied.len(), 2, "0001 init, 0002 web sessions");
        s.close().await;
    })
    .await;
}

const USER_MAPPING: &str = r#"<user-mapping>
  <authorize username="alice" password="alicepw">
    <connection name="web1">
      <protocol>ssh</protocol>
      <param name="hostname">10.0.0.5</param>
      <param name="password">conn-secret</param>
    </connection>
    <connection name="shared">
      <protocol>telnet</protocol>
      <param name="hostname">router</param>
    </connection>
  </authorize>
  <authorize username="bob" password="5F4DCC3B5AA765D61D8327DEB882CF99" encoding="md5">
    <protocol>vnc</protocol>
    <param name="hostname">desk</param>
    <connection name="shared">
      <protocol>telnet</protocol>
      <param name="hostname">router</param>
    </connection>
    <connection name="web1">
      <protocol>ssh</protocol>
      <param name="hostname">10.9.9.9</param>
    </connection>
  </authorize>
  <authorize username="carl" password="5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8" encoding="sha256"/>
</user-mapping>"#;

#[tokio::test]
async fn import_user_mapping_xml() {
    each_backend("import", |url| async move {
        let s = open(&url).await;
        let m = import::parse_user_mapping(USER_MAPPING).unwrap();
        let r = s.import_user_mapping(&m, "Imported").await.unwrap();
        assert_eq!(r.users_created, ["alice", "bob", "carl"]);
        assert_eq!(
            r.connections_created,
            ["web1", "shared", "DEFAULT", "web1 (bob)"]
        );
        assert_eq!(r.grants, 5);
        let names = |v: Vec<ConnectionSummary>| v.into_iter().map(|c| c.name).collect::<Vec<_>>();
        let alice = s.user_by_name("alice").await.unwrap().unwrap();
        let bob = s.user_by_name("bob").await.unwrap().unwrap();
        assert_eq!(
            names(s.connections_for_user(alice.id).await.unwrap()),
            ["shared", "web1"]
        );
        assert_eq!(
            names(s.connections_for_user(bob.id).await.unwrap()),
            ["DEFAULT", "shared", "web1 (bob)"]
        );
        let web1 = s
            .connection_by_name("Imported", "web1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(web1.group, "Imported");
        assert!(web1.secret_params.contains("password"));
        // Logins: plain, md5 and sha256 all work.
        assert!(matches!(
            s.authenticate("alice", "alicepw", None).await.unwrap(),
            LoginOutcome::Success(_)
        ));
        assert!(matches!(
            s.authenticate("bob", "password", None).await.unwrap(),
            LoginOutcome::Success(_)
        ));
        assert!(matches!(
            s.authenticate("carl", "password", None).await.unwrap(),
            LoginOutcome::Success(_)
        ));
        // Importing again changes nothing.
        let r2 = s.import_user_mapping(&m, "Imported").await.unwrap();
        assert!(r2.users_created.is_empty() && r2.connections_created.is_empty());
        assert!(r2.connections_updated.is_empty());
        assert_eq!(r2.users_existing.len(), 3);
        assert_eq!(s.list_connections().await.unwrap().len(), 4);
        s.close().await;
    })
    .await;
}

#[tokio::test]
async fn concurrent_first_runs_create_one_admin() {
    each_backend("first_run_race", |url| async move {
        let a = open(&url).await;
        let b = open(&url).await;
        let (ra, rb) = tokio::join!(a.ensure_admin(), b.ensure_admin());
        let created = [ra.unwrap(), rb.unwrap()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        assert_eq!(created.len(), 1, "exactly one one-time password");
        assert_eq!(a.list_users().await.unwrap().len(), 1);
        assert!(matches!(
            a.authenticate("Admin", &created[0], None).await.unwrap(),
            LoginOutcome::Success(_)
        ));
        a.close().await;
        b.close().await;
    })
    .await;
}

#[tokio::test]
async fn lockout_disabled_and_memory_database() {
    let policy = LockoutPolicy {
        max_failures: 0,
        lock_duration: Duration::from_secs(60),
    };
    let s = open_clock("sqlite::memory:", ManualClock::new(t0()), policy).await;
    s.create_user(&new_user("hal", "pw")).await.unwrap();
    for _ in 0..20 {
        assert_eq!(
            s.authenticate("hal", "bad", None).await.unwrap(),
            LoginOutcome::InvalidCredentials
        );
    }
    assert!(matches!(
        s.authenticate("hal", "pw", None).await.unwrap(),
        LoginOutcome::Success(_)
    ));
    let e = Store::open("mysql://root:topsecret@db/guacr", None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Invalid(_)) && !e.to_string().contains("topsecret"),
        "{e}"
    );
}

#[tokio::test]
async fn web_sessions_round_trip_touch_prune_and_go_with_their_user() {
    each_backend("web_sessions", |url| async move {
        let s = open(&url).await;
        let alice = s.create_user(&new_user("alice", "pw-alice")).await.unwrap();
        let rec = |id: &str, created: i64| WebSessionRecord {
            id_hash: id.into(),
            user_id: alice.id,
            csrf: format!("csrf-{id}"),
            created_ms: created,
            last_seen_ms: created,
        };
        let day = 86_400_000i64;
        let now = 1_800_000_000_000i64;
        s.web_session_put(&rec("a", now)).await.unwrap();
        s.web_session_put(&rec("old", now - 2 * day)).await.unwrap();
        assert_eq!(s.web_session_get("a").await.unwrap(), Some(rec("a", now)));
        assert_eq!(s.web_session_get("nope").await.unwrap(), None);
        // The same id twice is a conflict, not an overwrite.
        assert!(s.web_session_put(&rec("a", now + 1)).await.is_err());
        // Touching moves last_seen forward only.
        s.web_session_touch("a", now + 60_000).await.unwrap();
        s.web_session_touch("a", now + 1_000).await.unwrap();
        assert_eq!(
            s.web_session_get("a")
                .await
                .unwrap()
                .map(|r| r.last_seen_ms),
            Some(now + 60_000)
        );
        // Pruning removes what is too old or idle for too long.
        let removed = s.web_sessions_prune(now - day, now - day).await.unwrap();
        assert_eq!(removed, 1);
        assert!(s.web_session_get("old").await.unwrap().is_none());
        assert!(s.web_session_get("a").await.unwrap().is_some());
        // Ending a user's sessions but one (a password change).
        s.web_session_put(&rec("c1", now)).await.unwrap();
        s.web_session_put(&rec("c2", now)).await.unwrap();
        assert_eq!(
            s.web_sessions_end_user(alice.id, "c1").await.unwrap(),
            2,
            "a and c2"
        );
        assert!(s.web_session_get("c1").await.unwrap().is_some());
        assert!(s.web_session_get("c2").await.unwrap().is_none());
        s.web_session_put(&rec("a", now)).await.unwrap();
        // Logout deletes; deleting the user deletes its sessions.
        s.web_session_delete("a").await.unwrap();
        assert!(s.web_session_get("a").await.unwrap().is_none());
        s.web_session_put(&rec("b", now)).await.unwrap();
        assert!(s.delete_user(alice.id).await.unwrap());
        assert!(s.web_session_get("b").await.unwrap().is_none());
    })
    .await;
}
