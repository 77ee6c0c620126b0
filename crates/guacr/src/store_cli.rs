//! The store from the command line: `guacr init`, `guacr user add|passwd|list`,
//! `guacr connection add|list|import`, and how the database and its secret key
//! are found (shared with the web gateway so both use the same database).
//!
//! Database URL: `--database`, else env `GUACR_DATABASE_URL`, else `[database] url`,
//! else `sqlite://<data dir>/guacr.db`. Secret key: env `GUACR_SECRET_KEY`, else
//! `[database] secret_key_file` (created when missing), else `<data dir>/secret.key`
//! (created, mode 0600, on first run).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use guacr_store::{
    LockoutPolicy, NewConnection, NewUser, SecretKey, Store, StoreOptions, redact_url,
};

use crate::Config;

/// Where the gateway keeps its SQLite database and secret key by default:
/// `$GUACR_DATA_DIR`, else `/var/lib/guacr` for root, else `~/.local/share/guacr`.
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("GUACR_DATA_DIR").filter(|d| !d.is_empty()) {
        return d.into();
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return "/var/lib/guacr".into();
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/guacr"),
        None => "/tmp/guacr".into(),
    }
}

/// The database URL to use (see the module documentation).
pub fn database_url(cfg: &Config, cli: Option<&str>) -> String {
    if let Some(u) = cli.filter(|u| !u.is_empty()) {
        return u.to_owned();
    }
    if let Ok(u) = std::env::var("GUACR_DATABASE_URL")
        && !u.is_empty()
    {
        return u;
    }
    if let Some(u) = cfg.database.url.as_deref().filter(|u| !u.is_empty()) {
        return u.to_owned();
    }
    format!("sqlite://{}", data_dir().join("guacr.db").display())
}

/// The secret key (see the module documentation) and where it came from.
pub fn secret_key(cfg: &Config) -> anyhow::Result<(SecretKey, String)> {
    if let Ok(k) = std::env::var("GUACR_SECRET_KEY")
        && !k.is_empty()
    {
        let key = SecretKey::parse(&k).map_err(|e| anyhow::anyhow!("GUACR_SECRET_KEY: {e}"))?;
        return Ok((key, "GUACR_SECRET_KEY".to_owned()));
    }
    let path = match &cfg.database.secret_key_file {
        Some(p) => p.clone(),
        None => data_dir().join("secret.key"),
    };
    let key = SecretKey::load_or_create(&path)?;
    Ok((key, path.display().to_string()))
}

/// Store options from `[database]` (lockout policy).
pub fn store_options(cfg: &Config) -> StoreOptions {
    StoreOptions {
        lockout: LockoutPolicy {
            max_failures: cfg.database.lockout_failures,
            lock_duration: std::time::Duration::from_secs(
                cfg.database.lockout_minutes.saturating_mul(60),
            ),
        },
        ..Default::default()
    }
}

/// Opens (creating and migrating) the store the configuration names.
pub async fn open_store(cfg: &Config, cli_url: Option<&str>) -> anyhow::Result<Store> {
    let url = database_url(cfg, cli_url);
    let (key, _) = secret_key(cfg)?;
    Store::open_with(&url, Some(key), store_options(cfg))
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", redact_url(&url)))
}

/// `--database URL`, common to every store command.
#[derive(Debug, Clone, Default, Args)]
pub struct DbArgs {
    /// Database URL (sqlite://PATH or postgres://…); default: env
    /// GUACR_DATABASE_URL, `[database] url`, or guacr.db in the data directory.
    #[arg(long = "database", value_name = "URL")]
    pub database: Option<String>,
}

/// What `guacr user totp` does.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TotpAction {
    Begin,
    Confirm,
    Disable,
}

/// `guacr user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Creates a user; without --password-stdin a one-time password is generated and printed.
    Add {
        name: String,
        /// Administrator (may manage users, connections, sessions and the audit log).
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Display name (default: the user name).
        #[arg(long, value_name = "TEXT")]
        display_name: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Sets a user's password (from standard input with --password-stdin, else
    /// a generated one-time password, printed); also unlocks the account.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Two-factor login (TOTP, RFC 6238): `begin` prints the secret and an otpauth://
    /// URI for an authenticator app; `confirm CODE` turns it on once the app shows a
    /// valid code; `disable` turns it off.
    Totp {
        #[arg(value_enum)]
        action: TotpAction,
        name: String,
        /// The 6-digit code shown by the authenticator (for `confirm`).
        code: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Clears a user's failed logins and lock (e.g. an admin locked out by guessing).
    Unlock {
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Deletes a user (their group memberships and permissions go too).
    Delete {
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Lists users.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
}

/// `guacr connection …`
#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Creates a connection (secret parameters are encrypted at rest).
    Add {
        name: String,
        /// ssh, telnet, vnc, …
        #[arg(long)]
        protocol: String,
        /// A parameter, NAME=VALUE (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Folder path, e.g. "Servers/Linux".
        #[arg(long, value_name = "FOLDER", default_value = "")]
        group: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Let this user use it (repeatable).
        #[arg(long = "grant-user", value_name = "USER")]
        grant_users: Vec<String>,
        /// Let the members of this user group use it (repeatable).
        #[arg(long = "grant-group", value_name = "GROUP")]
        grant_groups: Vec<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Lists connections (secret parameters shown as ********).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Imports Guacamole's user-mapping.xml: users (plain, md5 and sha256
    /// passwords keep working), their connections and permissions.
    Import {
        file: PathBuf,
        /// Folder to put the imported connections in.
        #[arg(long, value_name = "FOLDER", default_value = "")]
        group: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// `guacr init`
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub db: DbArgs,
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p),
        None if Path::new(crate::config::DEFAULT_CONFIG).exists() => {
            Config::load(Path::new(crate::config::DEFAULT_CONFIG))
        }
        None => Ok(Config::default()),
    }
}

fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The first line of standard input, without its line ending.
fn read_password_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| anyhow::anyhow!("cannot read the password from standard input: {e}"))?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        anyhow::bail!("empty password on standard input");
    }
    Ok(pw)
}

/// `guacr init`: creates the database (and key) and the first admin.
pub fn run_init(args: InitArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let cfg = load_config(config)?;
    block_on(async move {
        let url = database_url(&cfg, args.db.database.as_deref());
        let (_, key_from) = secret_key(&cfg)?;
        let store = open_store(&cfg, args.db.database.as_deref()).await?;
        let mut text = format!("database: {}\nsecret key: {key_from}\n", redact_url(&url));
        match store.ensure_admin().await? {
            Some(pw) => text.push_str(&format!(
                "created user \"{}\" with one-time password: {pw}\n\
                 (shown once; it must be changed at first login)\n",
                guacr_store::DEFAULT_ADMIN
            )),
            None => text.push_str("users already exist: no password created\n"),
        }
        store.close().await;
        out(&text)
    })
}

/// `guacr user …`
pub fn run_user(cmd: UserCommand, config: Option<&Path>) -> anyhow::Result<()> {
    let cfg = load_config(config)?;
    block_on(async move {
        match cmd {
            UserCommand::Add {
                name,
                admin,
                password_stdin,
                display_name,
                db,
            } => {
                let (password, generated) = if password_stdin {
                    (read_password_stdin()?, false)
                } else {
                    (guacr_store::generate_password()?, true)
                };
                let store = open_store(&cfg, db.database.as_deref()).await?;
                let user = store
                    .create_user(&NewUser {
                        username: name,
                        display_name: display_name.unwrap_or_default(),
                        password: Some(password.clone()),
                        admin,
                        disabled: false,
                        must_change_password: generated,
                    })
                    .await?;
                store.close().await;
                let role = if user.admin { " (admin)" } else { "" };
                if generated {
                    out(&format!(
                        "created user \"{}\"{role} with one-time password: {password}\n",
                        user.username
                    ))
                } else {
                    out(&format!("created user \"{}\"{role}\n", user.username))
                }
            }
            UserCommand::Passwd {
                name,
                password_stdin,
                db,
            } => {
                let (password, generated) = if password_stdin {
                    (read_password_stdin()?, false)
                } else {
                    (guacr_store::generate_password()?, true)
                };
                let store = open_store(&cfg, db.database.as_deref()).await?;
                let user = store
                    .user_by_name(&name)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no user named {name:?}"))?;
                store.set_password(user.id, &password, generated).await?;
                store.close().await;
                if generated {
                    out(&format!(
                        "password of \"{}\" reset; one-time password: {password}\n",
                        user.username
                    ))
                } else {
                    out(&format!("password of \"{}\" changed\n", user.username))
                }
            }
            UserCommand::Totp {
                action,
                name,
                code,
                db,
            } => {
                let store = open_store(&cfg, db.database.as_deref()).await?;
                let user = store
                    .user_by_name(&name)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no user named {name:?}"))?;
                let text = match action {
                    TotpAction::Begin => {
                        let e = store.totp_begin(user.id).await?;
                        format!(
                            "secret: {}\nuri: {}\nAdd it to an authenticator app, then run \
                             `guacr user totp confirm {} CODE`.\n",
                            e.secret_base32, e.uri, user.username
                        )
                    }
                    TotpAction::Confirm => {
                        let code = code.ok_or_else(|| {
                            anyhow::anyhow!("confirm needs the code shown by the authenticator")
                        })?;
                        if !store.totp_confirm(user.id, code.trim()).await? {
                            store.close().await;
                            anyhow::bail!(
                                "the code does not match (or no enrolment was begun): \
                                 check the app's clock and try the next code"
                            );
                        }
                        format!("two-factor login is on for \"{}\"\n", user.username)
                    }
                    TotpAction::Disable => {
                        store.totp_disable(user.id).await?;
                        format!("two-factor login is off for \"{}\"\n", user.username)
                    }
                };
                store.close().await;
                out(&text)
            }
            UserCommand::Unlock { name, db } => {
                let store = open_store(&cfg, db.database.as_deref()).await?;
                let user = store
                    .user_by_name(&name)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no user named {name:?}"))?;
                store.unlock_user(user.id).await?;
                store.close().await;
                out(&format!("unlocked \"{}\"\n", user.username))
            }
            UserCommand::Delete { name, db } => {
                let store = open_store(&cfg, db.database.as_deref()).await?;
                let user = store
                    .user_by_name(&name)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no user named {name:?}"))?;
                store.delete_user(user.id).await?;
                store.close().await;
                out(&format!("deleted user \"{}\"\n", user.username))
            }
            UserCommand::List { db } => {
                let store = open_store(&cfg, db.database.as_deref()).await?;
                let users = store.list_users().await?;
                let now = store.now();
                store.close().await;
                let mut text = format!(
                    "{:<6} {:<24} {:<5} {:<8} {:<4} {:<7} {}\n",
                    "ID", "USERNAME", "ADMIN", "DISABLED", "TOTP", "LOCKED", "LAST LOGIN"
                );
                let yn = |b: bool| if b { "yes" } else { "no" };
                for u in users {
                    text.push_str(&format!(
                        "{:<6} {:<24} {:<5} {:<8} {:<4} {:<7} {}\n",
                        u.id,
                        u.username,
                        yn(u.admin),
                        yn(u.disabled),
                        yn(u.totp_enabled),
                        yn(u.locked_until.is_some_and(|t| t > now)),
                        u.last_login
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_else(|| "never".to_owned())
                    ));
                }
                out(&text)
            }
        }
    })
}

fn parse_param(p: &str) -> anyhow::Result<(String, String)> {
    match p.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => anyhow::bail!("--param {p:?}: expected NAME=VALUE"),
    }
}

/// `guacr connection …`
pub fn run_connection(cmd: ConnectionCommand, config: Option<&Path>) -> anyhow::Result<()> {
    let cfg = load_config(config)?;
    block_on(async move {
        match cmd {
            ConnectionCommand::Add {
                name,
                protocol,
                params,
                group,
                description,
                grant_users,
                grant_groups,
                db,
            } => {
                let params = params
                    .iter()
                    .map(|p| parse_param(p))
                    .collect::<anyhow::Result<_>>()?;
                let store = open_store(&cfg, db.database.as_deref()).await?;
                // Resolve the grantees before creating anything.
                let mut users = Vec::new();
                for u in &grant_users {
                    users.push(
                        store
                            .user_by_name(u)
                            .await?
                            .ok_or_else(|| anyhow::anyhow!("no user named {u:?}"))?
                            .id,
                    );
                }
                let mut groups = Vec::new();
                for g in &grant_groups {
                    groups.push(
                        store
                            .group_by_name(g)
                            .await?
                            .ok_or_else(|| anyhow::anyhow!("no user group named {g:?}"))?
                            .id,
                    );
                }
                let c = store
                    .create_connection(&NewConnection {
                        name,
                        protocol,
                        group,
                        description,
                        params,
                    })
                    .await?;
                for u in users {
                    store.grant_user(c.id, u).await?;
                }
                for g in groups {
                    store.grant_group(c.id, g).await?;
                }
                store.close().await;
                out(&format!(
                    "created connection {} \"{}\" ({}{})\n",
                    c.id,
                    c.name,
                    c.protocol,
                    if c.group.is_empty() {
                        String::new()
                    } else {
                        format!(", in {}", c.group)
                    }
                ))
            }
            ConnectionCommand::List { db } => {
                let store = open_store(&cfg, db.database.as_deref()).await?;
                let conns = store.list_connections().await?;
                store.close().await;
                let mut text = format!(
                    "{:<6} {:<32} {:<8} {}\n",
                    "ID", "NAME", "PROTOCOL", "PARAMETERS"
                );
                for c in conns {
                    let path = if c.group.is_empty() {
                        c.name.clone()
                    } else {
                        format!("{}/{}", c.group, c.name)
                    };
                    let params = c
                        .masked_params()
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.escape_debug()))
                        .collect::<Vec<_>>()
                        .join(" ");
                    text.push_str(&format!(
                        "{:<6} {:<32} {:<8} {params}\n",
                        c.id, path, c.protocol
                    ));
                }
                out(&text)
            }
            ConnectionCommand::Import { file, group, db } => {
                let xml = std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
                let mapping = guacr_store::import::parse_user_mapping(&xml)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                let store = open_store(&cfg, db.database.as_deref()).await?;
                let r = store.import_user_mapping(&mapping, &group).await?;
                store.close().await;
                let list = |v: &[String]| {
                    if v.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", v.join(", "))
                    }
                };
                out(&format!(
                    "imported {}: {} users created{}, {} already existed{}; \
                     {} connections created{}, {} updated{}; {} permissions granted\n",
                    file.display(),
                    r.users_created.len(),
                    list(&r.users_created),
                    r.users_existing.len(),
                    list(&r.users_existing),
                    r.connections_created.len(),
                    list(&r.connections_created),
                    r.connections_updated.len(),
                    list(&r.connections_updated),
                    r.grants
                ))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_parse() {
        assert_eq!(
            parse_param("hostname=a=b").unwrap(),
            ("hostname".to_owned(), "a=b".to_owned())
        );
        assert_eq!(parse_param("x=").unwrap(), ("x".to_owned(), String::new()));
        assert!(parse_param("=v").is_err());
        assert!(parse_param("novalue").is_err());
    }

    #[test]
    fn url_resolution_prefers_flag_then_config() {
        let mut cfg = Config::default();
        assert_eq!(database_url(&cfg, Some("sqlite:///x.db")), "sqlite:///x.db");
        if std::env::var_os("GUACR_DATABASE_URL").is_none() {
            cfg.database.url = Some("postgres://u:p@h/db".into());
            assert_eq!(database_url(&cfg, None), "postgres://u:p@h/db");
            cfg.database.url = None;
            assert!(database_url(&cfg, None).ends_with("/guacr.db"));
        }
    }
}
