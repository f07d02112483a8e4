//! The `articula` command line: the server and the administration an operator needs to start
//! from nothing.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use articula_actors::clock::now_ms;
use articula_protocol::{OrgKind, Role};
use clap::{Parser, Subcommand};

use crate::audit::export::{self, Format};
use crate::auth::password::{Passwords, check_new_password};
use crate::auth::{normalize_email, tokens};
use crate::config::Settings;
use crate::startup::Application;
use crate::store::Db;
use crate::store::users::UserStatus;

/// Articula: realtime collaboration for dental clinics and labs.
#[derive(Parser, Debug)]
#[command(name = "articula", version, about)]
pub struct Cli {
    /// A TOML configuration file (ARTICULA_* variables override it).
    #[arg(long, global = true, env = "ARTICULA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the server.
    Serve {
        /// Seed a demo clinic, lab, users and cases, and print the sign-ins.
        #[arg(long)]
        demo: bool,
    },
    /// Organisations.
    #[command(subcommand)]
    Org(OrgCmd),
    /// Users.
    #[command(subcommand)]
    User(UserCmd),
    /// Incident notices.
    #[command(subcommand)]
    Notice(NoticeCmd),
    /// The audit log: verify its chains, export one.
    #[command(subcommand)]
    Audit(AuditCmd),
}

#[derive(Subcommand, Debug)]
enum NoticeCmd {
    /// Publish an incident notice (what happened, its scope, what users should do): members see
    /// it in the web client until they acknowledge it.
    Publish {
        /// One line, at most 200 characters.
        #[arg(long)]
        title: String,
        /// A plain-text file with the body (`-`: standard input).
        #[arg(long)]
        body_file: PathBuf,
        /// Only this organisation (id or name); every organisation without it.
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCmd {
    /// Check audit chains: in the database (every organisation's, or one's), or in an exported
    /// JSON Lines or CSV file (offline: no database needed). Prints `ok: <org> <N> entries, last
    /// <hash>` per chain, or names the first broken entry. Exit code 1 when a chain is broken, 2
    /// on a usage or I/O error (a filtered export cannot be verified).
    Verify {
        /// Only this organisation (id or name; `system` for the system chain). With FILE: the
        /// organisation the file must be of (id).
        #[arg(long)]
        org: Option<String>,
        /// An export (`GET /api/v1/audit/export` or `articula audit export`) to check instead of
        /// the database.
        file: Option<PathBuf>,
    },
    /// Write an organisation's whole chain to standard output (the format of
    /// `GET /api/v1/audit/export`).
    Export {
        /// The organisation (id or name; `system` for the system chain).
        #[arg(long)]
        org: String,
        /// `jsonl` or `csv`.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
enum OrgCmd {
    /// Create a clinic or a lab; prints its id.
    Create {
        /// Name.
        #[arg(long)]
        name: String,
        /// `clinic` or `lab`.
        #[arg(long)]
        kind: OrgKind,
    },
    /// List organisations.
    List,
}

#[derive(Subcommand, Debug)]
enum UserCmd {
    /// Create a user with a password (read from stdin with --password-stdin, else generated and
    /// printed once) and a role in an organisation.
    Create {
        /// E-mail.
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Organisation (id or name).
        #[arg(long)]
        org: String,
        /// Role: doctor, clinic_admin, lab_tech, lab_admin, owner, auditor.
        #[arg(long)]
        role: Role,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Invite a user: creates the account without a password and prints a one-time invitation
    /// (valid 7 days) with which they choose one.
    Invite {
        /// E-mail.
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Organisation (id or name).
        #[arg(long)]
        org: String,
        /// Role.
        #[arg(long)]
        role: Role,
    },
    /// Take a role in an organisation away from a user (their live sockets lose what it gave
    /// them within a second).
    Ungrant {
        /// E-mail.
        #[arg(long)]
        email: String,
        /// Organisation (id or name).
        #[arg(long)]
        org: String,
        /// Role.
        #[arg(long)]
        role: Role,
    },
    /// Give an existing user a role in an organisation.
    Grant {
        /// E-mail.
        #[arg(long)]
        email: String,
        /// Organisation (id or name).
        #[arg(long)]
        org: String,
        /// Role.
        #[arg(long)]
        role: Role,
    },
    /// List users and their roles.
    List {
        /// Only members of this organisation (id or name).
        #[arg(long)]
        org: Option<String>,
    },
    /// Revoke a user: every membership and session ends and their live sockets close.
    Revoke {
        /// E-mail.
        #[arg(long)]
        email: String,
    },
}

/// Parses the command line and runs it.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    // An exported file is checked without configuration or database.
    if let Cmd::Audit(AuditCmd::Verify { file: Some(path), org }) = &cli.command {
        return audit_verify_file(path, org.as_deref());
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // Logs go to standard output, which `audit export` keeps for the export alone.
    if !matches!(cli.command, Cmd::Audit(_)) {
        crate::telemetry::init(&settings);
    }
    let res = match cli.command {
        Cmd::Serve { demo } => serve(settings, demo).await,
        Cmd::Org(cmd) => org(settings, cmd).await,
        Cmd::User(cmd) => user(settings, cmd).await,
        Cmd::Notice(cmd) => notice(settings, cmd).await,
        Cmd::Audit(cmd) => return audit(settings, cmd).await,
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(mut settings: Settings, demo: bool) -> anyhow::Result<()> {
    if demo && settings.security_contact.is_none() {
        settings.security_contact = Some(DEMO_SECURITY_CONTACT.into());
    }
    let app = Application::build(settings).await?;
    tracing::info!(url = %app.url(), "listening");
    if demo {
        let printed = crate::demo::seed(&app.state()).await.context("seeding the demo")?;
        println!("\nArticula is running at {}\n", app.url());
        println!("{printed}");
    } else {
        println!("Articula is running at {}", app.url());
    }
    app.run_until_stopped().await?;
    Ok(())
}

/// The security contact `serve --demo` publishes when none is configured.
const DEMO_SECURITY_CONTACT: &str = "mailto:security@demo.test";

async fn connect(settings: &Settings) -> anyhow::Result<Db> {
    crate::startup::install_crypto_provider();
    Db::connect(settings).await.context("database")
}

async fn find_org(db: &Db, org: &str) -> anyhow::Result<crate::store::users::Org> {
    db.find_org(org).await?.with_context(|| format!("no organisation {org:?}"))
}

fn check_role(role: Role, kind: OrgKind) -> anyhow::Result<()> {
    if !role.fits(kind) {
        bail!("the role {role} does not exist in a {kind}");
    }
    Ok(())
}

async fn org(settings: Settings, cmd: OrgCmd) -> anyhow::Result<()> {
    let db = connect(&settings).await?;
    match cmd {
        OrgCmd::Create { name, kind } => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 200 {
                bail!("the name must have 1 to 200 characters");
            }
            let org = db.create_org(name, kind, now_ms()).await.map_err(|e| {
                if e.is_unique_violation() {
                    anyhow::anyhow!("a {kind} named {name:?} exists already")
                } else {
                    e.into()
                }
            })?;
            println!("{}", org.id);
        }
        OrgCmd::List => {
            for o in db.list_orgs(None).await? {
                println!("{}\t{}\t{}", o.id, o.kind, o.name);
            }
        }
    }
    Ok(())
}

async fn user(settings: Settings, cmd: UserCmd) -> anyhow::Result<()> {
    let db = connect(&settings).await?;
    let now = now_ms();
    match cmd {
        UserCmd::Create { email, name, org, role, password_stdin } => {
            let email = normalize_email(&email).map_err(|e| anyhow::anyhow!(e.message))?;
            let org = find_org(&db, &org).await?;
            check_role(role, org.kind)?;
            let (password, generated) = if password_stdin {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                (s.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (hex::encode(rand::random::<[u8; 9]>()), true)
            };
            check_new_password(&password).map_err(|e| anyhow::anyhow!(e))?;
            let passwords = Passwords::new(settings.argon2_memory_kib, settings.argon2_iterations)?;
            let hash = passwords.hash(&password).await?;
            let id = db
                .create_user(&email, name.trim(), Some(&hash), UserStatus::Active, now)
                .await
                .map_err(|e| {
                    if e.is_unique_violation() { anyhow::anyhow!("{email} exists already") } else { e.into() }
                })?;
            db.add_membership(id, org.id, role, now).await?;
            println!("created {email} ({role} of {}) id {id}", org.name);
            if generated {
                println!("password: {password}");
            }
        }
        UserCmd::Invite { email, name, org, role } => {
            let email = normalize_email(&email).map_err(|e| anyhow::anyhow!(e.message))?;
            let org = find_org(&db, &org).await?;
            check_role(role, org.kind)?;
            let id =
                db.create_user(&email, name.trim(), None, UserStatus::Invited, now).await.map_err(|e| {
                    if e.is_unique_violation() { anyhow::anyhow!("{email} exists already") } else { e.into() }
                })?;
            db.add_membership(id, org.id, role, now).await?;
            let (token, hash) = tokens::new_token("inv");
            db.create_invitation(id, &hash, now, now + 7 * 86_400_000).await?;
            println!("invited {email} ({role} of {})", org.name);
            println!("invitation (valid 7 days, once): {token}");
            println!(
                "they set a password with POST /api/v1/auth/accept-invitation {{\"token\", \"password\"}}"
            );
        }
        UserCmd::Grant { email, org, role } => {
            let email = normalize_email(&email).map_err(|e| anyhow::anyhow!(e.message))?;
            let user = db.user_by_email(&email).await?.with_context(|| format!("no user {email}"))?;
            let org = find_org(&db, &org).await?;
            check_role(role, org.kind)?;
            db.add_membership(user.id, org.id, role, now).await?;
            println!("{email} is now {role} of {}", org.name);
        }
        UserCmd::Ungrant { email, org, role } => {
            let email = normalize_email(&email).map_err(|e| anyhow::anyhow!(e.message))?;
            let user = db.user_by_email(&email).await?.with_context(|| format!("no user {email}"))?;
            let org = find_org(&db, &org).await?;
            if db.remove_membership(user.id, org.id, role, now).await? {
                println!("{email} is no longer {role} of {}; live sockets follow within a second", org.name);
            } else {
                anyhow::bail!("{email} is not {role} of {}", org.name);
            }
        }
        UserCmd::List { org } => {
            let org = match org {
                Some(o) => Some(find_org(&db, &o).await?.id),
                None => None,
            };
            for (u, ms) in db.list_users(org).await? {
                let roles: Vec<String> = ms.iter().map(|m| format!("{}@{}", m.role, m.org_name)).collect();
                let status: &'static str = u.status.into();
                println!("{}\t{}\t{}\t{}\t{}", u.id, u.email, status, u.name, roles.join(","));
            }
        }
        UserCmd::Revoke { email } => {
            let email = normalize_email(&email).map_err(|e| anyhow::anyhow!(e.message))?;
            let user = db.user_by_email(&email).await?.with_context(|| format!("no user {email}"))?;
            db.revoke_user(user.id, "revoked_by_operator", now).await?;
            println!("revoked {email}: memberships and sessions ended; live sockets close within a second");
        }
    }
    db.close().await;
    Ok(())
}

async fn notice(settings: Settings, cmd: NoticeCmd) -> anyhow::Result<()> {
    let NoticeCmd::Publish { title, body_file, org } = cmd;
    let body = if body_file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(&body_file).with_context(|| format!("reading {}", body_file.display()))?
    };
    let (title, body) = crate::http::notices::checked(&title, &body).map_err(|e| anyhow::anyhow!(e))?;
    let db = connect(&settings).await?;
    let org = match org {
        Some(o) => Some(find_org(&db, &o).await?),
        None => None,
    };
    let id = db.publish_notice(org.as_ref().map(|o| o.id), &title, &body, None, now_ms()).await?;
    // The operator's notice joins the chain of every organisation it reaches.
    let orgs = match &org {
        Some(o) => vec![o.id],
        None => db.list_orgs(None).await?.iter().map(|o| o.id).collect(),
    };
    let r = crate::audit::Record::new("notice.published", None, None)
        .orgs(orgs)
        .target(format!("notice:{id}"))
        .details(serde_json::json!({"all_orgs": org.is_none()}));
    crate::audit::record(&db, r).await?;
    match &org {
        Some(o) => println!("published notice {id} to the members of {}", o.name),
        None => println!("published notice {id} to every organisation"),
    }
    db.close().await;
    Ok(())
}

/// Exit codes of `articula audit`.
const BROKEN: u8 = 1;
const USAGE: u8 = 2;

fn print_broken(b: &crate::audit::chain::Broken) {
    println!("broken: org {} entry n={}: {}", b.org_id, b.n, b.reason);
}

fn audit_verify_file(path: &std::path::Path, org: Option<&str>) -> ExitCode {
    match export::verify_file(path) {
        Ok(Ok(v)) if org.is_some_and(|o| o != v.org_id) => {
            eprintln!(
                "error: {} is the chain of organisation {}, not {}",
                path.display(),
                v.org_id,
                org.unwrap_or_default()
            );
            ExitCode::from(USAGE)
        }
        Ok(Ok(v)) => {
            println!("ok: {} {} entries, last {}", v.org_id, v.entries, v.last_hash);
            ExitCode::SUCCESS
        }
        Ok(Err(b)) => {
            print_broken(&b);
            ExitCode::from(BROKEN)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(USAGE)
        }
    }
}

/// The id of an organisation's chain, from an id or name.
async fn chain_org(db: &Db, org: &str) -> anyhow::Result<String> {
    if org == crate::audit::SYSTEM_ORG {
        return Ok(org.to_owned());
    }
    Ok(find_org(db, org).await?.id.to_string())
}

async fn audit(settings: Settings, cmd: AuditCmd) -> ExitCode {
    let res = async {
        let db = connect(&settings).await?;
        let code = match cmd {
            AuditCmd::Verify { org, file: _ } => {
                let orgs = match org {
                    Some(o) => vec![chain_org(&db, &o).await?],
                    None => db.audit_orgs().await?,
                };
                let mut broken = false;
                for org in orgs {
                    match crate::audit::verify_org(&db, &org).await? {
                        Ok(v) => println!("ok: {} {} entries, last {}", v.org_id, v.entries, v.last_hash),
                        Err(b) => {
                            print_broken(&b);
                            broken = true;
                        }
                    }
                }
                if broken { ExitCode::from(BROKEN) } else { ExitCode::SUCCESS }
            }
            AuditCmd::Export { org, format } => {
                use futures_util::StreamExt;
                use tokio::io::AsyncWriteExt;
                let org = chain_org(&db, &org).await?;
                // In the organisation's chain (no organisation: the system chain).
                let r = crate::audit::Record::new("audit.export", None, None)
                    .orgs(org.parse::<articula_protocol::OrgId>().ok())
                    .target(format!("org:{org}"))
                    .details(
                        serde_json::json!({"via": "cli", "format": format.extension(), "filtered": false}),
                    );
                crate::audit::record(&db, r).await?;
                let ex = export::Export { org, filter: Default::default(), format, finished: None };
                let mut out = tokio::io::stdout();
                let mut body = std::pin::pin!(export::stream(db.clone(), ex));
                while let Some(chunk) = body.next().await {
                    out.write_all(&chunk?).await?;
                }
                out.flush().await?;
                ExitCode::SUCCESS
            }
        };
        db.close().await;
        anyhow::Ok(code)
    };
    match res.await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(USAGE)
        }
    }
}
