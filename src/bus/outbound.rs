//! What this instance tells its peers: the [`Peers`] the revoker calls as each local
//! revocation lives (applied, confirmed, undone, pending, expired, and what Stytch's
//! webhooks made), written to the project's log Stream by the writer task.

use std::time::SystemTime;

use super::link::{Held, Link, Out, lock};
use super::message::Body;
use crate::revoke::{MadeByStytch, Peers, RemoteTarget, RevocationId};

impl Peers for Link {
    fn applied(
        &self,
        id: RevocationId,
        target: &RemoteTarget,
        confirmed: bool,
        until: SystemTime,
        revoked_at: Option<SystemTime>,
    ) {
        let body = Body::Applied {
            target: target.clone(),
            confirmed,
            until,
            revoked_at,
        };
        self.push(Out::Log(self.message(id, body)));
    }

    fn confirmed(&self, id: RevocationId, until: SystemTime, revoked_at: SystemTime) {
        let body = Body::Confirmed { until, revoked_at };
        self.push(Out::Log(self.message(id, body)));
        self.finish_pending(id);
    }

    fn undone(&self, id: RevocationId) {
        self.push(Out::Log(self.message(id, Body::Undone)));
        self.finish_pending(id);
    }

    fn pending(&self, id: RevocationId, target: &RemoteTarget, give_up_at: SystemTime) {
        // Only a session or member id lets another instance complete it; a credential known
        // by its hash alone stays with this instance (its peers refuse the hash meanwhile).
        if matches!(target, RemoteTarget::Key(_)) {
            return;
        }
        let body = Body::Applied {
            target: target.clone(),
            confirmed: false,
            until: give_up_at,
            revoked_at: None,
        };
        let held = Held {
            stream_id: None,
            message: self.message(id, body),
            done: false,
        };
        lock(&self.mine).insert(id, held);
        self.push(Out::PendingAdd(id));
    }

    fn expired(&self, id: RevocationId) {
        self.finish_pending(id);
    }

    fn made_by_stytch(
        &self,
        id: RevocationId,
        target: &MadeByStytch,
        revoked_at: SystemTime,
        until: SystemTime,
    ) {
        let body = Body::MadeByStytch {
            target: target.clone(),
            revoked_at,
            until,
        };
        self.push(Out::Log(self.message(id, body)));
    }

    fn client_cut_off(
        &self,
        id: RevocationId,
        client_id: &str,
        issued_before: SystemTime,
        until: SystemTime,
    ) {
        let body = Body::ClientCutOff {
            client: client_id.to_owned(),
            issued_before,
            until,
        };
        self.push(Out::Log(self.message(id, body)));
    }

    fn roles_changed(
        &self,
        id: RevocationId,
        member_id: &str,
        changed_at: SystemTime,
        roles: &[String],
        until: SystemTime,
    ) {
        let body = Body::RolesChanged {
            member: member_id.to_owned(),
            changed_at,
            roles: roles.to_vec(),
            until,
        };
        self.push(Out::Log(self.message(id, body)));
    }
}
