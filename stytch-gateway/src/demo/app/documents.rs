//! The documents of the demo's panel: an in-memory list per organization, behind the
//! gateway's rules (the demo's routes file): `GET /api/orgs/{organization_id}/documents`
//! needs `documents:read`, `DELETE …/documents/{document_id}` needs `documents:delete`, and
//! the organization in the path must be the member's. A request refused there never gets
//! here; the app still keys the list by the organization the gateway vouched for (the
//! identity headers), not by the path.

use std::collections::HashMap;
use std::sync::Mutex;

use http::{HeaderMap, Method, Response, StatusCode};

use super::{Identity, json, unauthenticated};
use crate::body::Body;

/// Where the documents routes start.
pub(super) const PREFIX: &str = "/api/orgs/";

/// The documents every organization starts with: `(id, title)`.
const STARTING: [(&str, &str); 4] = [
    ("doc-1", "Q3 roadmap"),
    ("doc-2", "Security review notes"),
    ("doc-3", "Onboarding guide"),
    ("doc-4", "Pricing experiments"),
];

/// One document.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Document {
    id: String,
    title: String,
}

/// Every organization's documents (each starts with [`STARTING`] on first use).
#[derive(Debug, Default)]
pub(crate) struct Documents {
    by_organization: Mutex<HashMap<String, Vec<Document>>>,
}

impl Documents {
    /// Runs `f` on `organization_id`'s list.
    fn with<T>(&self, organization_id: &str, f: impl FnOnce(&mut Vec<Document>) -> T) -> T {
        let mut all = self
            .by_organization
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = all.entry(organization_id.to_owned()).or_insert_with(|| {
            STARTING
                .iter()
                .map(|(id, title)| Document {
                    id: (*id).to_owned(),
                    title: (*title).to_owned(),
                })
                .collect()
        });
        f(list)
    }

    /// `GET /api/orgs/{organization_id}/documents` and
    /// `DELETE /api/orgs/{organization_id}/documents/{document_id}`; 404 for anything else
    /// under [`PREFIX`].
    pub(super) fn route(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
        let Some(identity) = Identity::of(headers) else {
            return unauthenticated();
        };
        let org = identity.organization_id.as_str();
        let segments: Vec<&str> = path.trim_start_matches(PREFIX).split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::GET, [_, "documents"]) => {
                json(StatusCode::OK, &self.with(org, |l| l.clone()))
            }
            (&Method::DELETE, [_, "documents", id]) => {
                let removed = self.with(org, |list| {
                    let before = list.len();
                    list.retain(|d| d.id != *id);
                    before != list.len()
                });
                if removed {
                    tracing::info!(document = id, "demo: document deleted");
                    json(StatusCode::OK, &serde_json::json!({ "deleted": id }))
                } else {
                    json(
                        StatusCode::NOT_FOUND,
                        &serde_json::json!({ "error": "document_not_found" }),
                    )
                }
            }
            _ => json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({ "error": "not_found" }),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_organization_has_its_own_documents() {
        // If this broke, deleting a document in Acme would delete it in Globex too (the
        // demo's list would not show tenancy).
        let docs = Documents::default();
        assert!(docs.with("acme", |l| l.iter().any(|d| d.id == "doc-1")));
        docs.with("acme", |l| l.retain(|d| d.id != "doc-1"));
        assert!(!docs.with("acme", |l| l.iter().any(|d| d.id == "doc-1")));
        assert!(docs.with("globex", |l| l.iter().any(|d| d.id == "doc-1")));
    }
}
