//! `serve --routes FILE`: the gateway's authorization rules, a TOML file of `[[route]]`
//! tables, each becoming one
//! [`authorize(pattern, rule)`](tower_stytch::StytchAuthLayerBuilder::authorize) in file
//! order (the first rule whose pattern matches a request applies):
//!
//! ```toml
//! [[route]]
//! match = "DELETE /api/orgs/{organization_id}/documents/{document_id}"  # METHOD (or *) and a path pattern
//! permission = { resource = "documents", action = "delete" }  # from Stytch's RBAC policy
//! organization = "organization_id"  # this capture must be the member's organization id or slug
//! mfa = true                        # a second factor
//! max_age = "10m"                   # the newest factor at most this old (humantime)
//! step_up = "/step-up"              # a browser is sent there (on --redirect-allowlist)
//! principals = ["members", "machines"]  # who may call (default ["members"]): machines are M2M clients by scope
//! ```
//!
//! Every key but `match` is optional, but a route must ask for one of `permission`,
//! `organization`, `mfa = true` or `max_age`; `step_up` needs `mfa = true` or `max_age`.
//! Unknown keys are errors. Every error names the file, the route (`route #N`, counted from
//! 1 in file order) and its pattern, and the problem; `serve` exits 2 on it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tower_stytch::config::{PolicyConfig, Principals, Rule};
use tower_stytch::{ConfigError, StytchAuthLayerBuilder};

use crate::error::GatewayError;

/// `principals` values: members (Stytch sessions) and machines (M2M access tokens).
const MEMBERS: &str = "members";
const MACHINES: &str = "machines";

/// The file as written: `[[route]]` tables and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutesToml {
    #[serde(default)]
    route: Vec<toml::Table>,
}

/// One `[[route]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteToml {
    #[serde(rename = "match")]
    pattern: String,
    permission: Option<PermissionToml>,
    organization: Option<String>,
    #[serde(default)]
    mfa: bool,
    max_age: Option<String>,
    step_up: Option<String>,
    principals: Option<Vec<String>>,
}

/// `permission = { resource = "…", action = "…" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionToml {
    resource: String,
    action: String,
}

/// Reads the routes file at `path`.
///
/// # Errors
///
/// [`GatewayError::RoutesFile`] when it cannot be read or is not a routes file,
/// [`GatewayError::InvalidRoute`] for a route that is not valid.
pub(crate) fn load(path: &Path) -> Result<Vec<(String, Rule)>, GatewayError> {
    let text = std::fs::read_to_string(path).map_err(|err| GatewayError::RoutesFile {
        file: path.to_owned(),
        problem: format!("cannot be read: {err}"),
    })?;
    parse(path, &text)
}

/// Parses the text of the routes file `path`: `(pattern, rule)` pairs in file order.
///
/// # Errors
///
/// As [`load`].
pub(crate) fn parse(path: &Path, text: &str) -> Result<Vec<(String, Rule)>, GatewayError> {
    let file_error = |problem: String| GatewayError::RoutesFile {
        file: path.to_owned(),
        problem,
    };
    let file: RoutesToml =
        toml::from_str(text).map_err(|err| file_error(toml_problem(&err, text)))?;
    if file.route.is_empty() {
        return Err(file_error("no [[route]] table".to_owned()));
    }
    from_tables(path, file.route)
}

/// The routes of the `[[route]]` `tables` of the file `path` (a routes file, or the
/// configuration file of `serve --config`), in order.
///
/// # Errors
///
/// [`GatewayError::InvalidRoute`] for a route that is not valid.
pub(crate) fn from_tables(
    path: &Path,
    tables: Vec<toml::Table>,
) -> Result<Vec<(String, Rule)>, GatewayError> {
    tables
        .into_iter()
        .enumerate()
        .map(|(i, table)| {
            let pattern = table
                .get("match")
                .and_then(|m| m.as_str())
                .map(str::to_owned);
            route(table).map_err(|problem| GatewayError::InvalidRoute {
                file: Some(path.to_owned()),
                index: i + 1,
                pattern,
                problem,
            })
        })
        .collect()
}

/// One route's pattern and rule, or what is wrong with it.
fn route(table: toml::Table) -> Result<(String, Rule), String> {
    let route: RouteToml = toml::Value::Table(table)
        .try_into()
        .map_err(|err: toml::de::Error| err.message().to_owned())?;
    let pattern = route.pattern.trim().to_owned();
    if pattern.is_empty() {
        return Err("match is empty".to_owned());
    }
    let principals = principals(route.principals.as_deref())?;
    let asks_step_up = route.mfa || route.max_age.is_some();
    let mut rule = Rule::new().principals(principals);
    let mut asks = asks_step_up;
    if let Some(p) = route.permission {
        if p.resource.trim().is_empty() || p.action.trim().is_empty() {
            return Err("permission needs a non-empty resource and action".to_owned());
        }
        rule = rule.permission(p.resource, p.action);
        asks = true;
    }
    if let Some(param) = route.organization {
        if !captures(&pattern).any(|c| c == param) {
            return Err(format!(
                "organization = {param:?} is not a {{{param}}} capture of match"
            ));
        }
        rule = rule.organization(param);
        asks = true;
    }
    if route.mfa {
        rule = rule.mfa();
    }
    if let Some(raw) = route.max_age {
        rule = rule.max_age(max_age(&raw)?);
    }
    if let Some(page) = route.step_up {
        if !asks_step_up {
            return Err("step_up needs mfa = true or max_age".to_owned());
        }
        if !page.starts_with('/') || page.starts_with("//") {
            return Err(format!("step_up = {page:?} must be a local path"));
        }
        rule = rule.step_up_page(page);
    }
    if !asks {
        return Err(
            "the route asks for nothing: give permission, organization, mfa = true or max_age"
                .to_owned(),
        );
    }
    Ok((pattern, rule))
}

/// `principals = ["members"]` (the default), `["machines"]` or both; anything else is
/// refused rather than ignored.
fn principals(principals: Option<&[String]>) -> Result<Principals, String> {
    let Some(names) = principals else {
        return Ok(Principals::Members);
    };
    let (mut members, mut machines) = (false, false);
    for name in names {
        match name.as_str() {
            MEMBERS => members = true,
            MACHINES => machines = true,
            other => {
                return Err(format!(
                    "principals: {other:?} is neither \"{MEMBERS}\" nor \"{MACHINES}\""
                ));
            }
        }
    }
    match (members, machines) {
        (true, true) => Ok(Principals::Both),
        (true, false) => Ok(Principals::Members),
        (false, true) => Ok(Principals::Machines),
        (false, false) => {
            Err("principals is empty: name \"members\", \"machines\" or both".to_owned())
        }
    }
}

/// The `{name}` captures of a pattern (not its `{*rest}`).
fn captures(pattern: &str) -> impl Iterator<Item = &str> {
    pattern.split(['/', ' ']).filter_map(|segment| {
        segment
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .filter(|name| !name.starts_with('*'))
    })
}

fn max_age(raw: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw.trim())
        .map_err(|err| format!("max_age = {raw:?} is not a duration (\"10m\", \"1h\"): {err}"))?;
    if d.is_zero() {
        return Err("max_age must be greater than zero".to_owned());
    }
    Ok(d)
}

/// A TOML error on one line: where (line number) and what.
pub(crate) fn toml_problem(err: &toml::de::Error, text: &str) -> String {
    match err.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", err.message())
        }
        None => err.message().to_owned(),
    }
}

/// The authorization settings onto `builder`: where redirects may go, the policy's refresh,
/// and each route's rule in order.
pub(crate) fn apply(
    mut builder: StytchAuthLayerBuilder,
    routes: &[(String, Rule)],
    policy_refresh: Duration,
    redirect_allowlist: &[String],
) -> StytchAuthLayerBuilder {
    if !redirect_allowlist.is_empty() {
        builder = builder.logout_redirect_allowlist(redirect_allowlist.iter().cloned());
    }
    let mut policy = PolicyConfig::default();
    policy.refresh_every = policy_refresh;
    builder = builder.policy(policy);
    for (pattern, rule) in routes {
        builder = builder.authorize(pattern, rule.clone());
    }
    builder
}

/// The layer's configuration error `err`, naming the route it is about when it is about one
/// of `routes` (read from `file`, if any): the layer checks what this module cannot (the
/// pattern's syntax, the step-up page against the redirect allowlist).
pub(crate) fn attribute(
    err: ConfigError,
    routes: &[(String, Rule)],
    file: Option<&Path>,
) -> GatewayError {
    if let ConfigError::InvalidRoute { pattern, reason } = &err
        && let Some(index) = routes.iter().position(|(p, _)| p.trim() == pattern.trim())
    {
        return GatewayError::InvalidRoute {
            file: file.map(PathBuf::from),
            index: index + 1,
            pattern: Some(routes[index].0.clone()),
            problem: (*reason).to_owned(),
        };
    }
    GatewayError::Config(err)
}

#[cfg(test)]
mod tests;
