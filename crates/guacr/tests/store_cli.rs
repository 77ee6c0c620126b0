//! `guacr init`, `guacr user …`, `guacr connection …` through the real binary,
//! on a SQLite database in a temporary data directory; results are checked
//! by opening the same database with guacr-store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use guacr_store::{LoginOutcome, SecretKey, Store};

struct Env {
    dir: PathBuf,
    /// `--database URL` for every command (PostgreSQL); `None` = the default SQLite file.
    database: Option<String>,
}

impl Env {
    fn new(name: &str) -> Env {
        let dir = std::env::temp_dir().join(format!(
            "guacr-store-cli-{name}-{}-{}",
            std::process::id(),
            SecretKey::generate()
                .unwrap()
                .to_base64()
                .replace(['/', '+', '='], "")[..8]
                .to_owned()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("guacr.toml"), "").unwrap();
        Env {
            dir,
            database: None,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_guacr"));
        cmd.arg("-c")
            .arg(self.dir.join("guacr.toml"))
            .args(args)
            .args(
                self.database
                    .iter()
                    .flat_map(|u| ["--database", u.as_str()]),
            )
            .env("GUACR_DATA_DIR", self.data())
            .env_remove("GUACR_DATABASE_URL")
            .env_remove("GUACR_SECRET_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run guacr");
        {
            let mut input = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                input.write_all(s.as_bytes()).unwrap();
            }
        }
        child.wait_with_output().unwrap()
    }

    /// Runs and requires success; returns stdout.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "guacr {args:?} failed: {}\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        );
        stdout
    }

    /// Runs and requires failure; returns stderr.
    fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(!out.status.success(), "guacr {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    async fn store(&self) -> Store {
        let key = SecretKey::load(&self.data().join("secret.key")).unwrap();
        let url = match &self.database {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data().join("guacr.db").display()),
        };
        Store::open(&url, Some(key)).await.unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The password after "one-time password: " on some line.
fn one_time_password(out: &str) -> Option<String> {
    out.lines().find_map(|l| {
        l.split_once("one-time password: ")
            .map(|(_, p)| p.trim().to_owned())
    })
}

async fn logs_in(store: &Store, user: &str, pw: &str) -> bool {
    matches!(
        store.authenticate(user, pw, None).await.unwrap(),
        LoginOutcome::Success(_)
    )
}

#[tokio::test]
async fn init_prints_a_one_time_password_once() {
    let env = Env::new("init");
    let first = env.ok(&["init"], None);
    let pw = one_time_password(&first).expect("first init prints a password");
    assert_eq!(pw.len(), 20, "{first}");
    assert!(first.contains("database: sqlite://"), "{first}");
    // The key file exists, private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.data().join("secret.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let second = env.ok(&["init"], None);
    assert_eq!(one_time_password(&second), None, "{second}");
    assert!(second.contains("users already exist"), "{second}");
    let store = env.store().await;
    assert!(logs_in(&store, "admin", &pw).await);
    let admin = store.user_by_name("admin").await.unwrap().unwrap();
    assert!(admin.admin && admin.must_change_password);
    store.close().await;
}

#[tokio::test]
async fn user_add_list_passwd() {
    let env = Env::new("user");
    let out = env.ok(&["user", "add", "alice"], None);
    let alice_pw = one_time_password(&out).expect("generated password printed");
    let out = env.ok(
        &["user", "add", "bob", "--admin", "--password-stdin"],
        Some("b0b's pass phrase\n"),
    );
    assert!(out.contains("created user \"bob\" (admin)"), "{out}");
    assert_eq!(one_time_password(&out), None);
    // Duplicates (case-insensitive) and bad input are refused clearly.
    let err = env.fails(&["user", "add", "ALICE"], None);
    assert!(err.contains("already exists"), "{err}");
    let err = env.fails(&["user", "add", "carol", "--password-stdin"], Some(""));
    assert!(err.contains("empty password"), "{err}");
    let list = env.ok(&["user", "list"], None);
    let rows: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(
        rows[0].contains("alice") && rows[0].contains(" no "),
        "{list}"
    );
    assert!(
        rows[1].contains("bob") && rows[1].contains(" yes "),
        "{list}"
    );
    let store = env.store().await;
    assert!(logs_in(&store, "alice", &alice_pw).await);
    assert!(logs_in(&store, "bob", "b0b's pass phrase").await);
    // passwd from stdin, then a generated one.
    env.ok(
        &["user", "passwd", "alice", "--password-stdin"],
        Some("new-alice-pw\r\n"),
    );
    assert!(!logs_in(&store, "alice", &alice_pw).await);
    assert!(logs_in(&store, "alice", "new-alice-pw").await);
    let out = env.ok(&["user", "passwd", "bob"], None);
    let bob_pw = one_time_password(&out).expect("generated password printed");
    assert!(logs_in(&store, "bob", &bob_pw).await);
    assert!(
        store
            .user_by_name("bob")
            .await
            .unwrap()
            .unwrap()
            .must_change_password
    );
    let err = env.fails(&["user", "passwd", "nobody"], None);
    assert!(err.contains("no user named"), "{err}");
    // Locked by guessing (default policy: 5 failures), unlocked from the CLI.
    for _ in 0..5 {
        store.authenticate("alice", "guess", None).await.unwrap();
    }
    assert!(matches!(
        store
            .authenticate("alice", "new-alice-pw", None)
            .await
            .unwrap(),
        LoginOutcome::Locked { .. }
    ));
    let list = env.ok(&["user", "list"], None);
    let alice_row = list.lines().find(|l| l.contains("alice")).unwrap();
    assert!(alice_row.contains(" yes "), "locked shown: {list}");
    env.ok(&["user", "unlock", "alice"], None);
    assert!(logs_in(&store, "alice", "new-alice-pw").await);
    env.ok(&["user", "delete", "bob"], None);
    assert!(store.user_by_name("bob").await.unwrap().is_none());
    let err = env.fails(&["user", "delete", "bob"], None);
    assert!(err.contains("no user named"), "{err}");
    store.close().await;
}

#[tokio::test]
async fn connection_add_and_list_hide_secrets() {
    let env = Env::new("conn");
    env.ok(&["user", "add", "dora", "--password-stdin"], Some("pw\n"));
    let out = env.ok(
        &[
            "connection",
            "add",
            "web1",
            "--protocol",
            "ssh",
            "--param",
            "hostname=10.0.0.1",
            "--param",
            "password=hunter2-cli",
            "--param",
            "command=echo a=b",
            "--group",
            "Servers/Linux",
            "--grant-user",
            "dora",
        ],
        None,
    );
    assert!(out.contains("created connection"), "{out}");
    let list = env.ok(&["connection", "list"], None);
    assert!(list.contains("Servers/Linux/web1"), "{list}");
    assert!(list.contains("password=********"), "{list}");
    assert!(list.contains("command=echo a=b"), "{list}");
    assert!(!list.contains("hunter2"), "{list}");
    let err = env.fails(
        &[
            "connection",
            "add",
            "x",
            "--protocol",
            "ssh",
            "--param",
            "novalue",
        ],
        None,
    );
    assert!(err.contains("NAME=VALUE"), "{err}");
    let err = env.fails(
        &[
            "connection",
            "add",
            "web1",
            "--protocol",
            "ssh",
            "--group",
            "Servers/Linux",
        ],
        None,
    );
    assert!(err.contains("already exists"), "{err}");
    let err = env.fails(
        &[
            "connection",
            "add",
            "y",
            "--protocol",
            "ssh",
            "--grant-user",
            "ghost",
        ],
        None,
    );
    assert!(err.contains("no user named"), "{err}");
    let store = env.store().await;
    let c = store
        .connection_by_name("Servers/Linux", "web1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.params["password"], "hunter2-cli");
    let dora = store.user_by_name("dora").await.unwrap().unwrap();
    assert!(store.can_use_connection(dora.id, c.id).await.unwrap());
    // The failed adds created nothing.
    assert_eq!(store.list_connections().await.unwrap().len(), 1);
    store.close().await;
}

const USER_MAPPING: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<user-mapping>
    <authorize username="alice" password="alice-plain">
        <connection name="router">
            <protocol>telnet</protocol>
            <param name="hostname">192.168.1.1</param>
            <param name="port">23</param>
        </connection>
        <connection name="db">
            <protocol>ssh</protocol>
            <param name="hostname">db.internal</param>
            <param name="password">db-secret-xml</param>
        </connection>
    </authorize>
    <authorize username="bob" password="5f4dcc3b5aa765d61d8327deb882cf99" encoding="md5">
        <protocol>ssh</protocol>
        <param name="hostname">bob-box</param>
    </authorize>
    <authorize username="eve" password="5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8" encoding="sha256">
        <connection name="router">
            <protocol>telnet</protocol>
            <param name="hostname">192.168.1.1</param>
            <param name="port">23</param>
        </connection>
    </authorize>
</user-mapping>
"#;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn connection_import_user_mapping() {
    let env = Env::new("import");
    let file = env.dir.join("user-mapping.xml");
    write(&file, USER_MAPPING);
    let out = env.ok(
        &[
            "connection",
            "import",
            file.to_str().unwrap(),
            "--group",
            "Legacy",
        ],
        None,
    );
    assert!(out.contains("3 users created (alice, bob, eve)"), "{out}");
    assert!(out.contains("3 connections created"), "{out}");
    assert!(out.contains("4 permissions granted"), "{out}");
    let list = env.ok(&["connection", "list"], None);
    for name in ["Legacy/router", "Legacy/db", "Legacy/DEFAULT"] {
        assert!(list.contains(name), "{name}: {list}");
    }
    assert!(!list.contains("db-secret-xml"), "{list}");
    let users = env.ok(&["user", "list"], None);
    assert!(users.contains("alice") && users.contains("bob") && users.contains("eve"));
    let store = env.store().await;
    assert!(logs_in(&store, "alice", "alice-plain").await);
    assert!(logs_in(&store, "bob", "password").await);
    assert!(logs_in(&store, "eve", "password").await);
    let eve = store.user_by_name("eve").await.unwrap().unwrap();
    let names: Vec<String> = store
        .connections_for_user(eve.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["router"]);
    store.close().await;
    // Importing again is harmless.
    let again = env.ok(
        &[
            "connection",
            "import",
            file.to_str().unwrap(),
            "--group",
            "Legacy",
        ],
        None,
    );
    assert!(
        again.contains("0 users created") && again.contains("0 connections created"),
        "{again}"
    );
    // A broken file is refused with the reason.
    write(
        &file,
        "<user-mapping><authorize password='x'/></user-mapping>",
    );
    let err = env.fails(&["connection", "import", file.to_str().unwrap()], None);
    assert!(err.contains("no username"), "{err}");
}

#[tokio::test]
async fn wrong_secret_key_is_a_clear_error() {
    let env = Env::new("key");
    env.ok(
        &[
            "connection",
            "add",
            "s",
            "--protocol",
            "ssh",
            "--param",
            "password=p",
        ],
        None,
    );
    let other = SecretKey::generate().unwrap().to_base64();
    let out = Command::new(env!("CARGO_BIN_EXE_guacr"))
        .arg("-c")
        .arg(env.dir.join("guacr.toml"))
        .args(["connection", "list"])
        .env("GUACR_DATA_DIR", env.data())
        .env("GUACR_SECRET_KEY", &other)
        .env_remove("GUACR_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("secret key does not match"), "{err}");
    assert!(!err.contains(&other));
}

/// The same commands against PostgreSQL (`--database`), on a fresh database
/// created from the test peers' `GUACR_TEST_PG_URL` and dropped afterwards.
#[tokio::test]
async fn commands_on_postgresql() {
    let admin = guacr_testkit::peers::var("GUACR_TEST_PG_URL").expect(
        "PostgreSQL test peer missing: GUACR_TEST_PG_URL is not set (run scripts/test-peers.sh start)",
    );
    let db = guacr_store::testing::TestDatabase::create_postgres(&admin)
        .await
        .expect("create a test database on the PostgreSQL peer");
    let url = db.url().to_owned();
    let result = tokio::spawn(async move {
        let mut env = Env::new("pg");
        env.database = Some(url);
        let out = env.ok(&["init"], None);
        let admin_pw = one_time_password(&out).expect("init prints a password");
        assert!(
            out.contains("postgres://postgres:***@"),
            "password hidden: {out}"
        );
        assert_eq!(one_time_password(&env.ok(&["init"], None)), None);
        env.ok(
            &["user", "add", "pat", "--password-stdin"],
            Some("pat-pw\n"),
        );
        let file = env.dir.join("user-mapping.xml");
        write(&file, USER_MAPPING);
        let out = env.ok(&["connection", "import", file.to_str().unwrap()], None);
        assert!(out.contains("3 users created"), "{out}");
        env.ok(
            &[
                "connection",
                "add",
                "pg-conn",
                "--protocol",
                "ssh",
                "--param",
                "password=pg-secret",
                "--grant-user",
                "pat",
            ],
            None,
        );
        let list = env.ok(&["connection", "list"], None);
        assert!(
            list.contains("pg-conn") && !list.contains("pg-secret"),
            "{list}"
        );
        let users = env.ok(&["user", "list"], None);
        assert_eq!(users.lines().count(), 1 + 5, "{users}");
        let store = env.store().await;
        assert!(logs_in(&store, "admin", &admin_pw).await);
        assert!(logs_in(&store, "pat", "pat-pw").await);
        assert!(logs_in(&store, "bob", "password").await);
        store.close().await;
    })
    .await;
    db.drop_database().await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn totp_enrolment_from_the_cli_makes_login_ask_for_a_code() {
    let env = Env::new("totp");
    env.ok(
        &["user", "add", "tina", "--password-stdin"],
        Some("tina-pass-1\n"),
    );
    let out = env.ok(&["user", "totp", "begin", "tina"], None);
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .expect("secret printed")
        .trim()
        .to_owned();
    assert!(out.contains("otpauth://totp/"), "{out}");
    // Not on until confirmed: the password alone still works.
    let store = env.store().await;
    assert!(logs_in(&store, "tina", "tina-pass-1").await);
    store.close().await;
    let key = guacr_store::totp::from_base32(&secret).expect("base32 secret");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let wrong = if guacr_store::totp::code_at(&key, now, 6) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let err = env.fails(&["user", "totp", "confirm", "tina", wrong], None);
    assert!(err.contains("does not match"), "{err}");
    let code = guacr_store::totp::code_at(&key, now, 6);
    let out = env.ok(&["user", "totp", "confirm", "tina", &code], None);
    assert!(out.contains("two-factor login is on"), "{out}");
    let store = env.store().await;
    assert!(matches!(
        store
            .authenticate("tina", "tina-pass-1", None)
            .await
            .unwrap(),
        LoginOutcome::TotpRequired
    ));
    // A fresh code (the next step: the one used to confirm cannot be replayed).
    let next = guacr_store::totp::code_at(&key, now + 30, 6);
    assert!(matches!(
        store
            .authenticate("tina", "tina-pass-1", Some(&next))
            .await
            .unwrap(),
        LoginOutcome::Success(_)
    ));
    store.close().await;
    env.ok(&["user", "totp", "disable", "tina"], None);
    let store = env.store().await;
    assert!(logs_in(&store, "tina", "tina-pass-1").await);
}
