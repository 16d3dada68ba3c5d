//! The demo's data: two organizations with members and live sessions, seeded in the
//! emulator, their roles, and the members the demo page offers to sign in as.
//!
//! The emulator's policy has a resource `documents` (`read`, `create`, `delete`) with the
//! roles `viewer` (read) and `editor` (read, create). Stytch's `stytch_admin` grants nothing
//! on an app's own resources, so the demo adds who may delete: the project role
//! `documents_admin` (every action on `documents`) and Globex's custom role `archivist`
//! (read, delete).
//!
//! | member | organization | roles | documents | force a member out, cut a machine off |
//! |---|---|---|---|---|
//! | Alice | Acme | `stytch_admin`, `documents_admin`, `machine_admin` | read, delete | yes, yes |
//! | Bob | Acme | `viewer` | read | no, no |
//! | Carol | Acme | `editor` | read | no, no |
//! | Dave | Globex | `stytch_admin`, `archivist` | read, delete | yes, no |

use stytch_emulator::{
    Emulator, EmulatorError, M2mAccessToken, M2mCredentials, NewM2mClient, RbacPermission,
    RbacRole, SessionInfo,
};

use super::app::DemoMember;

/// The demo's project role that may delete documents.
pub(crate) const DOCUMENTS_ADMIN: &str = "documents_admin";
/// Globex's custom role that may delete documents.
pub(crate) const ARCHIVIST: &str = "archivist";
/// The demo's project role that may cut an M2M client off (`m2m_clients:revoke`).
pub(crate) const MACHINE_ADMIN: &str = "machine_admin";
/// The demo's M2M client: its name and scopes.
pub(crate) const MACHINE_NAME: &str = "Nightly reports job";
/// The scopes of the demo's M2M client.
pub(crate) const MACHINE_SCOPES: [&str; 1] = ["read:reports"];

/// The seeded demo data.
#[derive(Debug)]
pub(crate) struct DemoSeed {
    /// Acme's id.
    pub(crate) organization_id: String,
    /// Alice, Acme's admin (`stytch_admin`, `documents_admin`).
    pub(crate) admin: SessionInfo,
    /// Bob, an Acme member who may read documents (`viewer`).
    pub(crate) bob: SessionInfo,
    /// Carol, an Acme member who may read and create documents (`editor`).
    pub(crate) carol: SessionInfo,
    /// Globex's id.
    pub(crate) other_organization_id: String,
    /// Dave, Globex's admin (`stytch_admin`, Globex's `archivist`).
    pub(crate) other_admin: SessionInfo,
    /// The M2M client of the machine card ([`MACHINE_NAME`], [`MACHINE_SCOPES`]).
    pub(crate) machine: M2mCredentials,
    /// An access token of it, minted at start (for the curl steps).
    pub(crate) machine_token: M2mAccessToken,
}

/// The roles of each demo member, by first name.
pub(crate) const ROLES: [(&str, &[&str]); 4] = [
    ("Alice", &["stytch_admin", DOCUMENTS_ADMIN, MACHINE_ADMIN]),
    ("Bob", &["viewer"]),
    ("Carol", &["editor"]),
    ("Dave", &["stytch_admin", ARCHIVIST]),
];

fn roles_of(name: &str) -> &'static [&'static str] {
    ROLES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(&[], |(_, roles)| roles)
}

/// Seeds the emulator: the roles that may delete documents and cut machines off, Acme with
/// an admin and two members, Globex with its own admin, each with a live session, and the
/// M2M client of the machine card.
///
/// # Errors
///
/// The emulator's, when it refuses the M2M client.
pub(crate) fn seed(emulator: &Emulator) -> Result<DemoSeed, EmulatorError> {
    emulator.set_project_role(
        RbacRole::new(
            DOCUMENTS_ADMIN,
            vec![RbacPermission::new("documents", &["*"])],
        )
        .description("Every action on the demo's documents (added by the demo)."),
    );
    emulator.set_project_role(
        RbacRole::new(
            MACHINE_ADMIN,
            vec![RbacPermission::new("m2m_clients", &["revoke"])],
        )
        .description("Cuts an M2M client off through the gateway (added by the demo)."),
    );
    let machine =
        emulator.create_m2m_client(NewM2mClient::new(&MACHINE_SCOPES).name(MACHINE_NAME))?;
    let machine_token = emulator.m2m_token(&machine.client_id, &machine.client_secret, None)?;
    let acme = emulator.create_organization("Acme", "acme");
    let alice = emulator.create_member(&acme, "alice@acme.test", roles_of("Alice"));
    let bob = emulator.create_member(&acme, "bob@acme.test", roles_of("Bob"));
    let carol = emulator.create_member(&acme, "carol@acme.test", roles_of("Carol"));
    let globex = emulator.create_organization("Globex", "globex");
    let archivist = RbacRole::new(
        ARCHIVIST,
        vec![RbacPermission::new("documents", &["read", "delete"])],
    )
    .description("Globex's own role: reads and deletes documents.");
    // Globex was created just above: it exists.
    let _ = emulator.set_organization_roles(&globex, vec![archivist]);
    let dave = emulator.create_member(&globex, "dave@globex.test", roles_of("Dave"));
    Ok(DemoSeed {
        organization_id: acme,
        admin: emulator.create_session(&alice),
        bob: emulator.create_session(&bob),
        carol: emulator.create_session(&carol),
        other_organization_id: globex,
        other_admin: emulator.create_session(&dave),
        machine,
        machine_token,
    })
}

/// The members the demo page offers to sign in as.
pub(crate) fn members(seed: &DemoSeed) -> Vec<DemoMember> {
    let (acme, globex) = (&seed.organization_id, &seed.other_organization_id);
    let member = |name: &str, email: &str, session: &SessionInfo, org: &str, org_name: &str| {
        let roles = roles_of(name);
        DemoMember {
            name: name.to_owned(),
            email: email.to_owned(),
            role: roles.join(", "),
            admin: roles.contains(&"stytch_admin"),
            member_id: session.member_id.clone(),
            organization_id: org.to_owned(),
            organization_name: org_name.to_owned(),
        }
    };
    vec![
        member("Alice", "alice@acme.test", &seed.admin, acme, "Acme"),
        member("Bob", "bob@acme.test", &seed.bob, acme, "Acme"),
        member("Carol", "carol@acme.test", &seed.carol, acme, "Acme"),
        member(
            "Dave",
            "dave@globex.test",
            &seed.other_admin,
            globex,
            "Globex",
        ),
    ]
}
