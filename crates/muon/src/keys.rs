//! `muon keys`: API keys for the control API, made, listed and revoked in the app's store
//! directly (a running `muon up` sees a change within a second), so the first key can be made
//! before the server that needs it starts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use muon_server::keys::{Key, Scope};
use muon_store::{Op, Store, Transaction};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Make a key and print it (once: only its hash is kept).
    Create {
        /// A name for the key, to tell keys apart in `muon keys list`.
        name: String,
        /// What the key may do: read (list, describe, follow), invoke (read, and invoke
        /// functions, put events, start and stop executions, answer tasks) or admin (all).
        #[arg(long, default_value = "admin", value_parser = ["read", "invoke", "admin"])]
        scope: String,
        /// Also make an AWS access key pair that signs with SigV4, for the AWS SDKs and CLI (its
        /// secret is kept sealed with the data folder's master.key, made if missing).
        #[arg(long)]
        aws: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the keys: ID, name, scope, when made, whether revoked.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key by its ID: requests that carry it are refused from then on.
    Revoke {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Which app's store the keys live in.
#[derive(clap::Args)]
pub struct StoreArgs {
    /// The app folder (its store is DIR/.muon unless --data-dir says otherwise).
    #[arg(long, default_value_os_t = crate::default_dir())]
    app: PathBuf,
    /// The data folder `muon up` uses (default: APP/.muon).
    #[arg(long, env = "MUON_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl StoreArgs {
    fn dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| self.app.join(".muon"))
    }

    fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        let dir = self.dir();
        let store = muon_store_sqlite::Sqlite::open(&dir.join("muon.db"))
            .with_context(|| format!("cannot open the data folder {}", dir.display()))?;
        Ok(Arc::new(store))
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The file in a data folder whose 32 bytes seal the secrets of SigV4 keys.
fn master_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("master.key")
}

/// The data folder's master key, if it has one.
pub(crate) fn master(data_dir: &std::path::Path) -> anyhow::Result<Option<[u8; 32]>> {
    let path = master_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    };
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| anyhow::anyhow!("{} is not 64 hex digits", path.display()))?;
    Ok(Some(bytes))
}

/// The data folder's master key, made (readable by its owner only) if missing.
fn master_or_new(data_dir: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    if let Some(m) = master(data_dir)? {
        return Ok(m);
    }
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("cannot draw a master key: {e}"))?;
    let path = master_path(data_dir);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot make {}", path.display()))?;
    file.write_all(hex::encode(bytes).as_bytes())?;
    file.sync_all()?;
    Ok(bytes)
}

/// The keys a store holds.
pub(crate) async fn all(store: &dyn Store) -> anyhow::Result<Vec<Key>> {
    store
        .keys()
        .await?
        .iter()
        .map(|r| Key::from_record(r).map_err(anyhow::Error::msg))
        .collect()
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Create {
            name,
            scope,
            aws,
            store: args,
        } => {
            let scope = Scope::parse(&scope).expect("clap checked the scope");
            let store = args.open()?;
            let (mut key, text) =
                Key::create(&name, scope, now_ms()).map_err(anyhow::Error::msg)?;
            let access = if aws {
                let master = master_or_new(&args.dir())?;
                key.seal_for_sigv4(&text, &master)
            } else {
                None
            };
            let mut tx = Transaction::new();
            tx.push(Op::PutKey(key.record()));
            store.commit(tx).await?;
            eprintln!(
                "muon: key {} ({name}, scope {}) made; it is shown once, keep it secret:",
                key.id,
                scope.as_str()
            );
            println!("{text}");
            eprintln!("  send it as `Authorization: Bearer <key>`; the CLI sends MUON_API_KEY");
            if let Some(access) = access {
                println!("AWS_ACCESS_KEY_ID={access}");
                println!("AWS_SECRET_ACCESS_KEY={}", &text[20..]);
                eprintln!("  the AWS SDKs and CLI sign with the access key pair (SigV4)");
            }
        }
        Command::List { json, store } => {
            let keys = all(store.open()?.as_ref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keys.is_empty() {
                println!("no keys: make one with `muon keys create NAME --scope admin`");
            } else {
                for k in keys {
                    let made = chrono::DateTime::from_timestamp_millis(k.created_ms)
                        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_default();
                    let state = if k.revoked_ms.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{}  {:<7} {:<8} {made}  {}",
                        k.id,
                        k.scope.as_str(),
                        state,
                        k.name
                    );
                }
            }
        }
        Command::Revoke { id, store } => {
            let store = store.open()?;
            let Some(mut key) = all(store.as_ref()).await?.into_iter().find(|k| k.id == id) else {
                anyhow::bail!("no key with ID {id} (see `muon keys list`)");
            };
            if key.revoked_ms.is_none() {
                key.revoked_ms = Some(now_ms());
                let mut tx = Transaction::new();
                tx.push(Op::PutKey(key.record()));
                store.commit(tx).await?;
            }
            println!("muon: key {id} ({}) is revoked", key.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
