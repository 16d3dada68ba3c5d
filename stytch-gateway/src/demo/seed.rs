//! The demo's data: two organizations with members and live sessions, seeded in the
//! emulator, and the members the demo page offers to sign in as.

use stytch_emulator::{Emulator, SessionInfo};

use super::app::DemoMember;

/// The seeded demo data.
#[derive(Debug)]
pub(crate) struct DemoSeed {
    /// Acme's id.
    pub(crate) organization_id: String,
    /// Alice, Acme's admin (`stytch_admin`).
    pub(crate) admin: SessionInfo,
    /// Bob, an Acme member.
    pub(crate) bob: SessionInfo,
    /// Carol, an Acme member.
    pub(crate) carol: SessionInfo,
    /// Globex's id.
    pub(crate) other_organization_id: String,
    /// Dave, Globex's admin.
    pub(crate) other_admin: SessionInfo,
}

/// Seeds the emulator: Acme with an admin and two members, Globex with its own admin, each
/// with a live session.
pub(crate) fn seed(emulator: &Emulator) -> DemoSeed {
    let acme = emulator.create_organization("Acme", "acme");
    let alice = emulator.create_member(&acme, "alice@acme.test", &["stytch_admin"]);
    let bob = emulator.create_member(&acme, "bob@acme.test", &[]);
    let carol = emulator.create_member(&acme, "carol@acme.test", &[]);
    let globex = emulator.create_organization("Globex", "globex");
    let dave = emulator.create_member(&globex, "dave@globex.test", &["stytch_admin"]);
    DemoSeed {
        organization_id: acme,
        admin: emulator.create_session(&alice),
        bob: emulator.create_session(&bob),
        carol: emulator.create_session(&carol),
        other_organization_id: globex,
        other_admin: emulator.create_session(&dave),
    }
}

/// The members the demo page offers to sign in as.
pub(crate) fn members(seed: &DemoSeed) -> Vec<DemoMember> {
    let member =
        |name: &str, email: &str, role: &str, session: &SessionInfo, org: &str, org_name: &str| {
            DemoMember {
                name: name.to_owned(),
                email: email.to_owned(),
                role: role.to_owned(),
                admin: role == "admin",
                member_id: session.member_id.clone(),
                organization_id: org.to_owned(),
                organization_name: org_name.to_owned(),
            }
        };
    let (acme, globex) = (&seed.organization_id, &seed.other_organization_id);
    vec![
        member(
            "Alice",
            "alice@acme.test",
            "admin",
            &seed.admin,
            acme,
            "Acme",
        ),
        member("Bob", "bob@acme.test", "member", &seed.bob, acme, "Acme"),
        member(
            "Carol",
            "carol@acme.test",
            "member",
            &seed.carol,
            acme,
            "Acme",
        ),
        member(
            "Dave",
            "dave@globex.test",
            "admin",
            &seed.other_admin,
            globex,
            "Globex",
        ),
    ]
}
