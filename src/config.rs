//! Command line and settings: every setting is a flag with an environment twin.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "scf-console",
    version,
    about = "A self-hosted console for asynchronous serverless functions with status trace"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the console (the default).
    Serve,
    /// Manage API keys for the SCF API.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key and print its SecretId and SecretKey (shown only this once).
    Create {
        /// What the key is for.
        #[arg(long, default_value = "")]
        description: String,
        /// The console user the key acts for, with their role.
        #[arg(long, default_value = crate::accounts::FIRST_ADMIN)]
        user: String,
        /// The key may read but change nothing, whatever its user's role.
        #[arg(long)]
        read_only: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address the console listens on.
    #[arg(
        long,
        env = "SCF_LISTEN",
        default_value = "127.0.0.1:9000",
        global = true
    )]
    pub listen: SocketAddr,

    /// Folder for the SQLite database (created if missing).
    #[arg(long, env = "SCF_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,

    /// Database URL; defaults to `sqlite://<data-dir>/scf-console.db`.
    // Hidden from `--help`, which would otherwise print a PostgreSQL password set in the
    // environment.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// Regions offered by the region selector, comma separated; the first is the default.
    #[arg(
        long,
        env = "SCF_REGIONS",
        value_delimiter = ',',
        default_value = "ap-guangzhou,ap-shanghai,ap-beijing,ap-chengdu,ap-hongkong",
        global = true
    )]
    pub regions: Vec<String>,

    /// Python interpreter for Python runtimes; default `/usr/bin/python3` if present, else
    /// `python3` on PATH.
    #[arg(long, env = "SCF_PYTHON", global = true)]
    pub python: Option<String>,

    /// Node.js interpreter for Node.js runtimes; default `node` on PATH.
    #[arg(long, env = "SCF_NODE", global = true)]
    pub node: Option<String>,

    /// Time zone of the API's time strings: `UTC` or an offset such as `+08:00`.
    #[arg(long, env = "SCF_TIMEZONE", default_value = "UTC", value_parser = parse_timezone, global = true)]
    pub timezone: time::UtcOffset,

    /// An API key created (or updated) at start, for scripts and CI; needs `--secret-key`.
    #[arg(long, env = "SCF_SECRET_ID", requires = "secret_key", global = true)]
    pub secret_id: Option<String>,

    /// The SecretKey of `--secret-id`.
    #[arg(
        long,
        env = "SCF_SECRET_KEY",
        requires = "secret_id",
        hide_env_values = true,
        global = true
    )]
    pub secret_key: Option<String>,

    /// How long async event records are kept after they end, e.g. `72h`, `3d`, `90m`.
    #[arg(
        long,
        env = "SCF_EVENT_RETENTION",
        default_value = "72h",
        global = true
    )]
    pub event_retention: HumanDuration,

    /// How often the retention sweeper runs, e.g. `60s`.
    #[arg(long, env = "SCF_SWEEP_INTERVAL", default_value = "60s", global = true)]
    pub sweep_interval: HumanDuration,

    /// Connections served at once; further clients wait in the listen backlog until one
    /// closes. Lowered at start to what the open-file limit allows.
    #[arg(
        long,
        env = "SCF_MAX_CONNECTIONS",
        default_value = "1024",
        value_parser = clap::value_parser!(u32).range(1..),
        global = true
    )]
    pub max_connections: u32,

    /// Time a client has to send a request's head (from connecting, or from the end of the
    /// previous response); a keep-alive connection idle this long is closed too.
    #[arg(long, env = "SCF_HEADER_TIMEOUT", default_value = "10s", global = true)]
    pub header_timeout: HumanDuration,

    /// Time a client has to send a whole request body, from the end of its head.
    #[arg(long, env = "SCF_BODY_TIMEOUT", default_value = "120s", global = true)]
    pub body_timeout: HumanDuration,

    /// Live function instances at most (idle or running, over all functions). At the cap the
    /// least recently used idle instance is stopped to make room, and events wait for one.
    /// Default: the smaller of (open-file limit - 256) / 8 and one per 64 MB of memory.
    #[arg(long, env = "SCF_MAX_INSTANCES", value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_instances: Option<u32>,

    /// Events this process runs at once, over all functions: what reservations are made from.
    /// Default: 8 per CPU, at least 8.
    #[arg(long, env = "SCF_WORKERS", value_parser = clap::value_parser!(u32).range(1..=4096), global = true)]
    pub workers: Option<u32>,

    /// Events of one function without a reserved concurrency running at once. Default: half
    /// the workers, so one function's long events always leave room for the others.
    #[arg(long, env = "SCF_FUNCTION_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..=4096), global = true)]
    pub function_concurrency: Option<u32>,

    /// How long a running event stays with this process without a heartbeat: processes sharing
    /// a store take over the events of one that stopped renewing after this long (at once when
    /// it shares the data folder and is gone for sure). At least 3s.
    #[arg(long, env = "SCF_LEASE", default_value = "60s", value_parser = parse_lease, global = true)]
    pub lease: HumanDuration,

    /// Accept API calls signed with `X-TC-Content-SHA256: UNSIGNED-PAYLOAD`, whose signature
    /// leaves the body out: anyone who captures such a call can replay it with another body
    /// for as long as its timestamp is fresh. Off by default; the SDKs sign the body.
    #[arg(
        long,
        env = "SCF_ALLOW_UNSIGNED_PAYLOAD",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new(),
        global = true
    )]
    pub allow_unsigned_payload: bool,
    /// Host names the server answers to, comma separated, each with an optional `:port` (any
    /// port without one), or `*` for any; requests naming another get 421. Default: the
    /// listen address, `localhost`, `127.0.0.1` and `[::1]`.
    #[arg(long, env = "SCF_ALLOWED_HOSTS", global = true)]
    pub allowed_hosts: Option<crate::app::AllowedHosts>,

    /// Serve HTTPS with this certificate chain (PEM; with --tls-key). Answers then carry HSTS.
    #[arg(long, env = "SCF_TLS_CERT", requires = "tls_key", global = true)]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SCF_TLS_KEY", requires = "tls_cert", global = true)]
    pub tls_key: Option<PathBuf>,

    /// User and group ids functions run as when the server runs as root: each function gets
    /// its own, `FIRST + function id % size`. Pick a range no account of the machine uses.
    #[arg(
        long,
        env = "SCF_SANDBOX_UIDS",
        default_value = "200000-299999",
        global = true
    )]
    pub sandbox_uids: crate::engine::runtime::sandbox::UidRange,

    /// Refuse to start unless functions are fully isolated from each other (a user per
    /// function and a control group per instance, which need root and the memory and pids
    /// controllers). Off, the server starts anyway and says what is missing.
    #[arg(
        long,
        env = "SCF_REQUIRE_ISOLATION",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new(),
        global = true
    )]
    pub require_isolation: bool,

    /// The password of the first console user, `admin`, created on first start when there are
    /// no users (at least 10 characters). Without it a random one is printed once in the log.
    #[arg(
        long,
        env = "SCF_ADMIN_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub admin_password: Option<String>,

    /// How long a console login lasts, e.g. `12h`.
    #[arg(long, env = "SCF_SESSION_TTL", default_value = "12h", value_parser = parse_session_ttl, global = true)]
    pub session_ttl: HumanDuration,

    /// How long audit log entries are kept, e.g. `90d`.
    #[arg(
        long,
        env = "SCF_AUDIT_RETENTION",
        default_value = "90d",
        global = true
    )]
    pub audit_retention: HumanDuration,

    /// scf-console runs behind a reverse proxy that sets `X-Forwarded-For` and
    /// `X-Forwarded-Proto`: the client's address and whether it used HTTPS are read from them
    /// (for the audit log, login limits and Secure cookies). Never set this when clients can
    /// reach the server directly: they could then claim any address.
    #[arg(
        long,
        env = "SCF_TRUSTED_PROXY",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new(),
        global = true
    )]
    pub trusted_proxy: bool,

    /// Address of a second listener that serves only `GET /metrics` (Prometheus text) and the
    /// `/healthz` and `/readyz` probes, without a login: keep it on a private network or
    /// loopback. Off unless set; the console's port never serves metrics.
    #[arg(long, env = "SCF_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,

    /// Log lines as `text` (the default) or `json` (one object per line, with the fields of
    /// the request or event a line is about).
    #[arg(
        long,
        env = "SCF_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn parse_session_ttl(s: &str) -> Result<HumanDuration, String> {
    let ttl: HumanDuration = s.parse()?;
    if ttl.0 < Duration::from_secs(60) || ttl.0 > Duration::from_secs(30 * 86_400) {
        return Err("a session lasts between 1m and 30d".into());
    }
    Ok(ttl)
}

fn parse_lease(s: &str) -> Result<HumanDuration, String> {
    let lease: HumanDuration = s.parse()?;
    if lease.0 < Duration::from_secs(3) {
        return Err("a lease shorter than 3s would run out between heartbeats".into());
    }
    Ok(lease)
}

fn parse_timezone(s: &str) -> Result<time::UtcOffset, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("UTC") || s == "Z" {
        return Ok(time::UtcOffset::UTC);
    }
    let format = time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]");
    time::UtcOffset::parse(s, format)
        .map_err(|_| format!("{s:?} is not a time zone; use UTC or an offset such as +08:00"))
}

/// A duration written as a number and a unit: `500ms`, `60s`, `15m`, `72h`, `3d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("{s:?} needs a unit: ms, s, m, h or d (e.g. 72h)"))?;
        let (number, unit) = s.split_at(split);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{s:?} must start with a whole number (e.g. 72h)"))?;
        let millis = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(format!(
                    "{s:?} has unknown unit {unit:?}; use ms, s, m, h or d"
                ));
            }
        };
        Ok(HumanDuration(Duration::from_millis(
            n.saturating_mul(millis),
        )))
    }
}

impl Settings {
    /// The database URL in force: the explicit one, or the SQLite file under the data folder.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.data_dir.join("scf-console.db").display()
            )
        })
    }

    /// Regions with blanks and repeats removed, so `SCF_REGIONS="a, b,,a"` means a and b.
    pub fn regions(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in self
            .regions
            .iter()
            .map(|r| r.trim())
            .filter(|r| !r.is_empty())
        {
            if !out.iter().any(|o| o == r) {
                out.push(r.to_string());
            }
        }
        out
    }

    pub fn server_limits(&self) -> crate::state::ServerLimits {
        crate::state::ServerLimits {
            max_connections: self.max_connections as usize,
            header_timeout: self.header_timeout.0,
            body_timeout: self.body_timeout.0,
        }
    }

    /// The host names in force: the configured ones, or those of this machine and the listen
    /// address.
    pub fn allowed_hosts(&self) -> crate::app::AllowedHosts {
        self.allowed_hosts
            .clone()
            .unwrap_or_else(|| crate::app::AllowedHosts::for_listen(self.listen))
    }

    pub fn python_command(&self) -> String {
        self.python.clone().unwrap_or_else(|| {
            if std::path::Path::new("/usr/bin/python3").exists() {
                "/usr/bin/python3".into()
            } else {
                "python3".into()
            }
        })
    }

    pub fn node_command(&self) -> String {
        self.node.clone().unwrap_or_else(|| "node".into())
    }

    /// The engine's configuration: its defaults, with what these settings change.
    pub fn engine(&self) -> crate::engine::EngineConfig {
        let mut config = crate::engine::EngineConfig {
            lease: self.lease.0,
            nodes_dir: Some(self.data_dir.join("nodes")),
            uids: self.sandbox_uids,
            // The data folder holds every function's code and variables and the API keys.
            hidden: std::path::absolute(&self.data_dir).into_iter().collect(),
            // This binary runs as an instance's init too.
            init: std::env::current_exe().ok(),
            ..Default::default()
        };
        if let Some(n) = self.max_instances {
            config.max_instances = n as usize;
        }
        if let Some(n) = self.workers {
            config.workers = n as usize;
            config.per_function = crate::engine::default_per_function(config.workers);
        }
        if let Some(n) = self.function_concurrency {
            config.per_function = n as usize;
        }
        config
    }
}

/// `url` with its password, if it has one, replaced by `***`: what logs and messages may show
/// of a database URL. A password can sit in the user part (`postgres://user:secret@host/db`) or
/// in the query (`?password=secret`). SQLite URLs are paths and show as they are.
pub fn redact_database_url(url: &str) -> String {
    const HIDDEN: &str = "***";
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    if scheme.eq_ignore_ascii_case("sqlite") {
        return url.to_string();
    }
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let mut out = format!("{scheme}://");
    // The last `@` ends the user part: a password may contain an unencoded `@`.
    match authority.rsplit_once('@') {
        Some((user_part, host)) => {
            match user_part.split_once(':') {
                Some((user, _password)) => out.push_str(&format!("{user}:{HIDDEN}")),
                None => out.push_str(user_part),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let (before_fragment, fragment) = tail.split_at(tail.find('#').unwrap_or(tail.len()));
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                        format!("{key}={HIDDEN}")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            out.push_str(path);
            out.push('?');
            out.push_str(&query.join("&"));
        }
        None => out.push_str(before_fragment),
    }
    out.push_str(fragment);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_never_show() {
        for (url, shown) in [
            (
                "postgres://scf:s3cret@db.internal:5432/scf",
                "postgres://scf:***@db.internal:5432/scf",
            ),
            (
                "postgresql://scf:p@ss:w0rd@db/scf?sslmode=require",
                "postgresql://scf:***@db/scf?sslmode=require",
            ),
            (
                "postgres://db/scf?user=scf&password=s3cret&sslpassword=k3y",
                "postgres://db/scf?user=scf&password=***&sslpassword=***",
            ),
            ("postgres://scf@db/scf", "postgres://scf@db/scf"),
            ("postgres://db", "postgres://db"),
            ("mysql://root:toor@localhost", "mysql://root:***@localhost"),
            (
                "sqlite:///var/lib/scf/scf-console.db",
                "sqlite:///var/lib/scf/scf-console.db",
            ),
            ("sqlite://./data/a:b@c.db", "sqlite://./data/a:b@c.db"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_database_url(url), shown, "{url}");
        }
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(
            "72h".parse(),
            Ok(HumanDuration(Duration::from_secs(72 * 3600)))
        );
        assert_eq!(
            "3d".parse(),
            Ok(HumanDuration(Duration::from_secs(3 * 86400)))
        );
        assert_eq!(
            "250ms".parse(),
            Ok(HumanDuration(Duration::from_millis(250)))
        );
        assert!("72".parse::<HumanDuration>().is_err());
        assert!("h".parse::<HumanDuration>().is_err());
        assert!("5y".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn time_zones_are_utc_or_offsets() {
        assert_eq!(parse_timezone("UTC"), Ok(time::UtcOffset::UTC));
        assert_eq!(
            parse_timezone("+08:00"),
            Ok(time::UtcOffset::from_hms(8, 0, 0).unwrap())
        );
        assert!(parse_timezone("Mars/Base").is_err());
    }
}
