//! One emulator (seeded) and one runtime per fuzzing process, started on first use.
//! Shared by every target; not every target uses every field.
#![allow(dead_code)]

use std::sync::OnceLock;

use stytch_emulator::{Emulator, EmulatorConfig, SessionInfo};
use tower_stytch::client::RetryPolicy;
use tower_stytch::{StytchClient, StytchConfig};

pub struct World {
    pub runtime: tokio::runtime::Runtime,
    pub emulator: Emulator,
    pub member: SessionInfo,
}

pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (emulator, member) = runtime.block_on(async {
            let emulator = Emulator::start(EmulatorConfig::new()).await.unwrap();
            let org = emulator.create_organization("Acme", "acme");
            let member_id = emulator.create_member(&org, "member@acme.test", &["stytch_admin"]);
            let member = emulator.create_session(&member_id);
            (emulator, member)
        });
        World {
            runtime,
            emulator,
            member,
        }
    })
}

pub fn client(emulator: &Emulator) -> StytchClient {
    let config = StytchConfig::builder(emulator.project_id(), emulator.secret())
        .base_url(emulator.base_url())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    StytchClient::new(config).unwrap()
}
