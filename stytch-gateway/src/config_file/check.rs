//! `stytch-gateway check-config FILE`'s output: the effective configuration of `serve
//! --config FILE` (the command line reads the file with the environment, in the same
//! precedence, and checks every setting as `serve` does before it binds, without binding a
//! port or calling Stytch or Redis), each key with its value and where the value came from
//! (`env NAME`, `file`, `default`), secrets redacted (`<redacted>`) and a URL's password
//! replaced by `***`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command};
use tower_stytch::config::Rule;

use super::{Loaded, TABLES, is_secret, place, settable};

/// `check-config`'s argument.
#[derive(Debug, Clone, Args)]
pub(crate) struct CheckConfigArgs {
    /// The configuration file, as `serve --config FILE` reads it (with the environment).
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
}

/// What is printed for a secret's value.
const REDACTED: &str = "<redacted>";

/// The effective configuration of `serve --config file` as `loaded` with `serve` (the
/// built command), as a TOML file with each value's source after it; `routes` are the
/// authorization routes, read from `routes_file`.
pub(crate) fn render(
    serve: &Command,
    loaded: &Loaded,
    file: &Path,
    routes: &[(String, Rule)],
    routes_file: Option<&Path>,
) -> String {
    let Some(("serve", matches)) = loaded.matches.subcommand() else {
        return String::new();
    };
    let mut top = String::new();
    let mut tables: Vec<(&str, String)> = TABLES.iter().map(|t| (*t, String::new())).collect();
    for (arg, long) in settable(serve) {
        let (table, key) = place(long);
        let line = entry(arg, &key, matches, &loaded.from_file);
        match tables.iter_mut().find(|(t, _)| Some(*t) == table) {
            Some((_, lines)) => lines.push_str(&line),
            None => top.push_str(&line),
        }
    }
    let mut out = format!(
        "# {}: valid\n# effective configuration; precedence: flag > environment > file > default\n\n{top}",
        file.display()
    );
    for (table, lines) in tables {
        let _ = write!(out, "\n[{table}]\n{lines}");
    }
    let _ = write!(out, "\n# authorization routes: {}", routes.len());
    if let Some(from) = routes_file {
        let _ = write!(out, " (from {})", from.display());
    }
    out.push('\n');
    for (i, (pattern, _)) in routes.iter().enumerate() {
        let _ = writeln!(out, "#   route #{}: {pattern}", i + 1);
    }
    out
}

/// One key's line: `key = value  # source`, or `# key (unset)`.
fn entry(arg: &Arg, key: &str, matches: &ArgMatches, from_file: &[String]) -> String {
    let id = arg.get_id().as_str();
    let source = if from_file.iter().any(|f| f == id) {
        "file".to_owned()
    } else {
        match matches.value_source(id) {
            Some(ValueSource::EnvVariable) => {
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                format!("env {}", env.unwrap_or_default())
            }
            Some(ValueSource::CommandLine) => "flag".to_owned(),
            Some(_) => "default".to_owned(),
            None => return format!("# {key} (unset)\n"),
        }
    };
    let value = if matches!(arg.get_action(), ArgAction::SetTrue) {
        matches.get_flag(id).to_string()
    } else {
        let raw: Vec<String> = matches
            .get_raw(id)
            .map(|values| {
                values
                    .map(|v| shown(arg, key, &v.to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        match (arg.get_action(), raw.as_slice()) {
            (_, []) => return format!("# {key} (unset)\n"),
            (ArgAction::Append, values) => format!("[{}]", values.join(", ")),
            (_, [one, ..]) => one.clone(),
        }
    };
    format!("{key} = {value}  # {source}\n")
}

/// A value as printed: a TOML string, redacted for a secret, a URL without its password.
fn shown(arg: &Arg, key: &str, value: &str) -> String {
    if is_secret(arg, key) {
        return quote(REDACTED);
    }
    quote(&without_password(value))
}

/// `value` with the user information of a URL (`scheme://user:password@host`) replaced by
/// `***`.
pub(crate) fn without_password(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => value.to_owned(),
    }
}

/// A TOML basic string.
fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04X}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}
