//! `serve --config FILE`: a TOML file with a key for every flag of `serve`, and the
//! authorization routes; `check-config FILE` ([`check`]).
//!
//! **Keys.** A flag's key is its long name in snake_case (`--upstream-timeout` →
//! `upstream_timeout`; a repeatable flag takes a list: `public = ["/assets/"]`). The
//! Stytch project's flags live in a `[stytch]` table (`project_id`, `secret`, `base_url`,
//! `deadline` for `--stytch-deadline`), the Redis flags in `[redis]` (`--redis-url` →
//! `url`), the webhook's in `[webhook]` (`path`, `secret`). A switch takes `true` or
//! `false`; any other value a string (a number may be written bare). Relative paths (keys
//! whose flag takes a FILE) are relative to the configuration file. The authorization
//! routes are `[[route]]` tables, as in a routes file (`--routes`). An unknown key is an
//! error; every error names the file and the key, never a secret's value.
//!
//! **Precedence:** flag > environment variable > file > default. A value the command line
//! or the environment gives is not read from the file; the others are handed to the same
//! parser as the flags (`--key=value`), so a file's value is checked exactly as the flag's.
//! Routes come from one place only: `[[route]]` tables with `--routes` (or `GATEWAY_ROUTES`,
//! or a `routes` key) is an error.

pub(crate) mod check;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command};
use tower_stytch::config::Rule;

use crate::error::GatewayError;

/// The tables grouping flags by their prefix (`--redis-url` is `url` in `[redis]`).
const TABLES: [&str; 3] = ["stytch", "redis", "webhook"];
/// The Stytch project's flags without the prefix, in `[stytch]` too.
const STYTCH_UNPREFIXED: [&str; 3] = ["project-id", "secret", "base-url"];
/// The key of the authorization routes' tables.
const ROUTE: &str = "route";

/// `--config`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConfigArgs {
    /// TOML file with a key for every flag (snake_case; [stytch], [redis] and [webhook]
    /// tables; the authorization routes as [[route]] tables). Flags and environment
    /// variables override it. Check it with `stytch-gateway check-config FILE`.
    #[arg(long, env = "GATEWAY_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The routes of the file's `[[route]]` tables, when it has any.
    #[arg(skip)]
    pub(crate) routes: Option<FileRoutes>,
}

/// Routes read from the configuration file.
#[derive(Debug, Clone)]
pub(crate) struct FileRoutes {
    /// The configuration file.
    pub(crate) file: PathBuf,
    /// `(pattern, rule)` in file order.
    pub(crate) routes: Vec<(String, Rule)>,
}

/// Why the command line could not be read.
#[derive(Debug)]
pub(crate) enum CliError {
    /// A usage error (or help, or the version), clap's to print.
    Clap(clap::Error),
    /// The configuration file is not valid.
    Config(GatewayError),
}

/// The command line read, with the configuration file's values.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// What clap made of the command line, the environment and the file.
    pub(crate) matches: ArgMatches,
    /// The ids of the `serve` arguments whose values came from the file.
    pub(crate) from_file: Vec<String>,
    /// The routes of the file's `[[route]]` tables, for `serve`.
    pub(crate) routes: Option<FileRoutes>,
}

/// Reads `argv` (the program's name first) with `command` (built): the command line, the
/// environment, and with `serve --config FILE` the file, in that precedence.
///
/// # Errors
///
/// [`CliError::Clap`] for usage errors, [`CliError::Config`] for the file's.
pub(crate) fn load(command: &Command, argv: Vec<OsString>) -> Result<Loaded, CliError> {
    let matches = command
        .clone()
        .try_get_matches_from(&argv)
        .map_err(CliError::Clap)?;
    let target = match (matches.subcommand(), command.find_subcommand("serve")) {
        (Some(("serve", serve_matches)), Some(serve)) => serve_matches
            .get_one::<PathBuf>("config")
            .map(|file| (serve, serve_matches.clone(), file.clone())),
        _ => None,
    };
    let Some((serve, serve_matches, file)) = target else {
        return Ok(Loaded {
            matches,
            from_file: Vec::new(),
            routes: None,
        });
    };
    let table = read(&file).map_err(CliError::Config)?;
    let error = |problem: String| {
        CliError::Config(GatewayError::ConfigFile {
            file: file.clone(),
            problem,
        })
    };
    let (extra, from_file) = arguments(serve, &serve_matches, &table, &file).map_err(error)?;
    let routes = routes(&table, &serve_matches, &file).map_err(CliError::Config)?;
    let mut argv = argv;
    argv.extend(extra);
    let matches = command
        .clone()
        .try_get_matches_from(argv)
        .map_err(CliError::Clap)?;
    Ok(Loaded {
        matches,
        from_file,
        routes,
    })
}

/// The file's TOML.
fn read(file: &Path) -> Result<toml::Table, GatewayError> {
    let problem = |problem: String| GatewayError::ConfigFile {
        file: file.to_owned(),
        problem,
    };
    let text =
        std::fs::read_to_string(file).map_err(|err| problem(format!("cannot be read: {err}")))?;
    toml::from_str(&text).map_err(|err| problem(crate::routes::toml_problem(&err, &text)))
}

/// Where a flag's value lives in the file: its table (`None`: the top level) and key.
pub(crate) fn place(long: &str) -> (Option<&'static str>, String) {
    let snake = |s: &str| s.replace('-', "_");
    if STYTCH_UNPREFIXED.contains(&long) {
        return (Some("stytch"), snake(long));
    }
    for table in TABLES {
        if let Some(rest) = long.strip_prefix(table).and_then(|r| r.strip_prefix('-')) {
            return (Some(table), snake(rest));
        }
    }
    (None, snake(long))
}

/// The arguments of `serve` a file may set: every flag but help, version and `--config`.
pub(crate) fn settable(serve: &Command) -> impl Iterator<Item = (&Arg, &str)> {
    serve.get_arguments().filter_map(|arg| {
        let long = arg.get_long()?;
        let settable = matches!(
            arg.get_action(),
            ArgAction::Set | ArgAction::Append | ArgAction::SetTrue
        ) && long != "config";
        settable.then_some((arg, long))
    })
}

/// `table.key`, or `key` at the top level.
pub(crate) fn dotted(table: Option<&str>, key: &str) -> String {
    table.map_or_else(|| key.to_owned(), |t| format!("{t}.{key}"))
}

/// Whether the key names a secret, whose value is never printed.
pub(crate) fn is_secret(arg: &Arg, key: &str) -> bool {
    arg.is_hide_env_values_set()
        || ["secret", "password", "token"]
            .iter()
            .any(|word| key.contains(word))
}

/// The file's keys as `--flag=value` arguments (those the command line and the
/// environment did not give), and the ids of their flags.
fn arguments(
    serve: &Command,
    matches: &ArgMatches,
    table: &toml::Table,
    file: &Path,
) -> Result<(Vec<OsString>, Vec<String>), String> {
    let mut extra = Vec::new();
    let mut from_file = Vec::new();
    // The flags' own parsers check the file's values, the environment aside.
    let alone = serve.clone().mut_args(|arg| arg.env(None));
    for (table_name, key, value) in entries(table)? {
        let name = dotted(table_name, key);
        let (arg, long) = settable(serve)
            .find(|(_, long)| place(long) == (table_name, key.to_owned()))
            .ok_or_else(|| unknown(serve, &name, key))?;
        let id = arg.get_id().as_str();
        if matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        for raw in values(arg, &name, value, file)? {
            check(&alone, arg, &name, &raw)?;
            extra.push(OsString::from(format!("--{long}={raw}")));
        }
        if matches!(arg.get_action(), ArgAction::SetTrue) && value.as_bool() == Some(true) {
            extra.push(OsString::from(format!("--{long}")));
        }
        from_file.push(id.to_owned());
    }
    Ok((extra, from_file))
}

/// An unknown key's error, naming where the key belongs when it is misplaced.
fn unknown(serve: &Command, name: &str, key: &str) -> String {
    let elsewhere: Vec<String> = settable(serve)
        .map(|(_, long)| place(long))
        .filter(|(_, k)| k == key)
        .map(|(table, k)| format!("`{}`", dotted(table, &k)))
        .collect();
    if elsewhere.is_empty() {
        return format!(
            "unknown key `{name}` (the keys are serve's flags in snake_case: see --help)"
        );
    }
    format!(
        "unknown key `{name}`: did you mean {}?",
        elsewhere.join(" or ")
    )
}

/// The file's `(table, key, value)` entries, `[[route]]` aside.
fn entries(table: &toml::Table) -> Result<Vec<(Option<&'static str>, &str, &toml::Value)>, String> {
    let mut entries = Vec::new();
    for (key, value) in table {
        if key == ROUTE {
            continue;
        }
        match (TABLES.iter().find(|t| *t == key), value) {
            (Some(name), toml::Value::Table(inner)) => {
                entries.extend(inner.iter().map(|(k, v)| (Some(*name), k.as_str(), v)));
            }
            (Some(name), _) => return Err(format!("`{name}` must be a table ([{name}])")),
            (None, _) => entries.push((None, key.as_str(), value)),
        }
    }
    Ok(entries)
}

/// The flag values of the key `name`'s `value` (none for a switch: it is a bare flag).
fn values(arg: &Arg, name: &str, value: &toml::Value, file: &Path) -> Result<Vec<String>, String> {
    let path = arg
        .get_value_names()
        .is_some_and(|names| names.iter().any(|n| n.as_str() == "FILE"));
    let scalar = |value: &toml::Value| -> Result<String, String> {
        let raw = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => return Err(format!("`{name}` must be a string")),
        };
        Ok(match file.parent() {
            Some(dir) if path && Path::new(&raw).is_relative() => {
                dir.join(&raw).to_string_lossy().into_owned()
            }
            _ => raw,
        })
    };
    match (arg.get_action(), value) {
        (ArgAction::SetTrue, toml::Value::Boolean(_)) => Ok(Vec::new()),
        (ArgAction::SetTrue, _) => Err(format!("`{name}` must be true or false")),
        (ArgAction::Append, toml::Value::Array(items)) => items.iter().map(scalar).collect(),
        (_, toml::Value::Array(_)) => Err(format!("`{name}` takes one value, not a list")),
        (_, value) => Ok(vec![scalar(value)?]),
    }
}

/// Checks `raw` with the flag's own parser: `serve` alone (`alone`: without environment
/// variables) parses `--long=raw`.
fn check(alone: &Command, arg: &Arg, name: &str, raw: &str) -> Result<(), String> {
    let long = arg.get_long().unwrap_or_default();
    let argv = [
        OsString::from("serve"),
        OsString::from(format!("--{long}={raw}")),
    ];
    let Err(err) = alone.clone().try_get_matches_from(argv) else {
        return Ok(());
    };
    if is_secret(arg, name) {
        return Err(format!("`{name}`: the value is refused"));
    }
    let rendered = err.to_string();
    let first = rendered.lines().next().unwrap_or_default();
    Err(format!("`{name}`: {}", first.trim_start_matches("error: ")))
}

/// The routes of the file's `[[route]]` tables, if any.
fn routes(
    table: &toml::Table,
    serve: &ArgMatches,
    file: &Path,
) -> Result<Option<FileRoutes>, GatewayError> {
    let problem = |problem: &str| GatewayError::ConfigFile {
        file: file.to_owned(),
        problem: problem.to_owned(),
    };
    let Some(value) = table.get(ROUTE) else {
        return Ok(None);
    };
    let toml::Value::Array(items) = value else {
        return Err(problem("`route` must be [[route]] tables"));
    };
    let tables = items
        .iter()
        .map(|item| item.as_table().cloned())
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| problem("`route` must be [[route]] tables"))?;
    if table.contains_key("routes") {
        return Err(problem(
            "both `routes` (a routes file) and [[route]] tables: keep one",
        ));
    }
    if matches!(
        serve.value_source("routes"),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    ) {
        return Err(problem(
            "[[route]] tables here and --routes (or GATEWAY_ROUTES): keep one",
        ));
    }
    let routes = crate::routes::from_tables(file, tables)?;
    Ok(Some(FileRoutes {
        file: file.to_owned(),
        routes,
    }))
}
