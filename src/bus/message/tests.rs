use super::*;
use proptest::prelude::*;

fn instance(n: u8) -> InstanceId {
    InstanceId(format!("{n:032x}"))
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn decode_owned(fields: &[(&'static str, String)]) -> Decoded {
    Message::decode(fields.iter().map(|(k, v)| (*k, v.as_bytes())))
}

fn samples() -> Vec<Message> {
    let key = RevKey {
        origin: instance(1),
        rev: 42,
    };
    let applied = |target, revoked_at: Option<SystemTime>| Body::Applied {
        target,
        confirmed: revoked_at.is_some(),
        until: at(1_700_000_300_000),
        revoked_at,
    };
    [
        applied(WireTarget::Session("member-session-test-1".into()), None),
        applied(
            WireTarget::Member("member-test-1".into()),
            Some(at(1_700_000_000_000)),
        ),
        applied(WireTarget::Key([0xab; 32]), None),
        Body::Confirmed {
            until: at(1_700_000_300_000),
            revoked_at: at(1_700_000_000_000),
        },
        Body::Undone,
        Body::MadeByStytch {
            target: MadeByStytch::Member("member-test-1".into()),
            revoked_at: at(1_700_000_000_000),
            until: at(1_700_000_300_000),
        },
        Body::MadeByStytch {
            target: MadeByStytch::Organization("organization-test-1".into()),
            revoked_at: at(1_700_000_000_000),
            until: at(1_700_000_300_000),
        },
        roles_changed(vec!["admin, \"ops\"".into(), "stytch_member".into()]),
        Body::ClientCutOff {
            client: "m2m-client-test-1".into(),
            issued_before: at(1_700_000_000_000),
            until: at(1_700_003_660_000),
        },
    ]
    .into_iter()
    .map(|body| Message {
        from: instance(2),
        key: key.clone(),
        body,
    })
    .collect()
}

fn roles_changed(roles: Vec<String>) -> Body {
    Body::RolesChanged {
        member: "member-test-1".into(),
        changed_at: at(1_700_000_000_000),
        roles,
        until: at(1_700_000_300_000),
    }
}

/// The encoded fields of sample `pick`, field `name` set to `value`.
fn with(pick: usize, name: &str, value: &str) -> Decoded {
    let mut fields = samples()[pick].encode();
    for field in &mut fields {
        if field.0 == name {
            field.1 = value.to_owned();
        }
    }
    decode_owned(&fields)
}

/// The encoded fields of sample `pick` without field `name`.
fn without(pick: usize, name: &str) -> Decoded {
    let fields: Vec<_> = samples()[pick]
        .encode()
        .into_iter()
        .filter(|f| f.0 != name)
        .collect();
    decode_owned(&fields)
}

#[test]
fn every_kind_round_trips() {
    // If this broke, peers would drop (or misread) what an instance publishes.
    for message in samples() {
        assert_eq!(
            decode_owned(&message.encode()),
            Decoded::Message(message.clone())
        );
    }
}

#[test]
fn unknown_versions_and_kinds_are_skipped_not_malformed() {
    // If this broke, a rolling upgrade adding a kind (a team-wide revocation, say) would
    // count every new message as malformed on the old instances, or misread it.
    let mut fields = samples()[0].encode();
    fields[1].1 = "team".into();
    assert_eq!(decode_owned(&fields), Decoded::Unknown);
    let mut fields = samples()[0].encode();
    fields[0].1 = "2".into();
    assert_eq!(decode_owned(&fields), Decoded::Unknown);
    let mut fields = samples()[0].encode();
    fields.push(("added_later", "x".into()));
    assert!(matches!(decode_owned(&fields), Decoded::Message(_)));
}

#[test]
fn broken_messages_are_malformed() {
    // If this broke, a garbled or hostile entry would be applied (an id that is not a
    // Stytch id, a hold of absurd length) instead of being counted and dropped.
    let base = samples()[0].encode();
    let with = |name: &str, value: &str| {
        let mut fields = base.clone();
        for field in &mut fields {
            if field.0 == name {
                field.1 = value.to_owned();
            }
        }
        decode_owned(&fields)
    };
    assert_eq!(with("id", "a b"), Decoded::Malformed("bad_id"));
    assert_eq!(with("from", "XYZ"), Decoded::Malformed("bad_from"));
    assert_eq!(with("rev", "-1"), Decoded::Malformed("bad_rev"));
    assert_eq!(
        with("until", "99999999999999999"),
        Decoded::Malformed("bad_time")
    );
    assert_eq!(
        with("confirmed", "yes"),
        Decoded::Malformed("bad_confirmed")
    );
    let without_id: Vec<_> = base.iter().filter(|f| f.0 != "id").cloned().collect();
    assert_eq!(decode_owned(&without_id), Decoded::Malformed("no_id"));
    let mut twice = base.clone();
    twice.push(("id", "other".into()));
    assert_eq!(decode_owned(&twice), Decoded::Malformed("duplicate_field"));
    let key = samples()[2].encode();
    let bad_key: Vec<_> = key
        .into_iter()
        .map(|(k, v)| {
            if k == "id" {
                (k, "zz".repeat(32))
            } else {
                (k, v)
            }
        })
        .collect();
    assert_eq!(decode_owned(&bad_key), Decoded::Malformed("bad_key"));
}

#[test]
fn broken_messages_of_what_stytch_made_are_malformed() {
    // If this broke, a garbled or hostile entry about a webhook's effect would be applied
    // (an id that is not a Stytch id, roles that are not a list, a hold of absurd length,
    // a member-wide revocation without its time) instead of being counted and dropped.
    let (member, organization, roles) = (5, 6, 7);
    assert_eq!(with(member, "id", "a b"), Decoded::Malformed("bad_id"));
    assert_eq!(with(organization, "id", ""), Decoded::Malformed("bad_id"));
    assert_eq!(
        with(organization, "until", "99999999999999999"),
        Decoded::Malformed("bad_time")
    );
    assert_eq!(
        without(member, "revoked_at"),
        Decoded::Malformed("no_revoked_at")
    );
    assert_eq!(
        without(organization, "until"),
        Decoded::Malformed("no_until")
    );
    assert_eq!(with(roles, "id", "x/y"), Decoded::Malformed("bad_id"));
    for bad in ["", "admin", "{\"a\":1}", "[1]", "[\"a\",null]", "[\"a\""] {
        assert_eq!(
            with(roles, "roles", bad),
            Decoded::Malformed("bad_roles"),
            "{bad}"
        );
    }
    let too_long = format!("[\"{}\"]", "r".repeat(MAX_ROLES));
    assert_eq!(
        with(roles, "roles", &too_long),
        Decoded::Malformed("bad_roles")
    );
    assert_eq!(without(roles, "roles"), Decoded::Malformed("no_roles"));
    assert_eq!(
        without(roles, "changed_at"),
        Decoded::Malformed("no_changed_at")
    );
    assert_eq!(
        with(roles, "changed_at", "soon"),
        Decoded::Malformed("bad_time")
    );
    let no_roles = Message {
        body: roles_changed(Vec::new()),
        ..samples()[roles].clone()
    };
    assert_eq!(
        decode_owned(&no_roles.encode()),
        Decoded::Message(no_roles.clone()),
        "a member left with no role is a change like any other"
    );
}

#[test]
fn broken_client_cut_offs_are_malformed() {
    // If this broke, a garbled or hostile cut-off entry would be applied (a client id that is
    // not a Stytch id, a cut-off without its time or its end) instead of counted and dropped.
    let cut = 8;
    assert_eq!(samples()[cut].body.kind(), "m2m_client");
    assert_eq!(with(cut, "id", "a b"), Decoded::Malformed("bad_id"));
    assert_eq!(without(cut, "id"), Decoded::Malformed("no_id"));
    assert_eq!(
        without(cut, "issued_before"),
        Decoded::Malformed("no_issued_before")
    );
    assert_eq!(
        with(cut, "issued_before", "yesterday"),
        Decoded::Malformed("bad_time")
    );
    assert_eq!(without(cut, "until"), Decoded::Malformed("no_until"));
}

proptest! {
    #[test]
    fn decode_never_panics(
        fields in proptest::collection::vec(
            (
                prop_oneof![
                    Just("v"), Just("kind"), Just("from"), Just("origin"), Just("rev"),
                    Just("id"), Just("confirmed"), Just("until"), Just("revoked_at"),
                    Just("changed_at"), Just("roles"), Just("other"),
                ],
                proptest::collection::vec(any::<u8>(), 0..80),
            ),
            0..12,
        )
    ) {
        // If this broke, one hostile entry in Redis would crash every instance reading it.
        let _ = Message::decode(fields.iter().map(|(k, v)| (*k, v.as_slice())));
    }

    #[test]
    fn decode_of_mutated_valid_messages_never_panics(
        pick in 0usize..8, field in 0usize..9, value in ".{0,70}"
    ) {
        // If this broke, a near-valid entry (one field changed) could crash a reader.
        let mut fields = samples()[pick].encode();
        let n = fields.len();
        fields[field % n].1 = value;
        let _ = decode_owned(&fields);
    }

    #[test]
    fn any_roles_round_trip(roles in proptest::collection::vec(".{0,20}", 0..8)) {
        // If this broke, a role id holding a comma, a quote or any other character would
        // reach peers as other roles (or be dropped), so peers would re-validate the wrong
        // sessions after a role change.
        let message = Message {
            body: roles_changed(roles),
            ..samples()[7].clone()
        };
        prop_assert_eq!(decode_owned(&message.encode()), Decoded::Message(message));
    }
}
