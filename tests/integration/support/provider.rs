//! panva's oidc-provider (OpenID-certified, from npm), started for a test: the real
//! authorization server the OAuth2 and identity tests talk to.

use super::helper::{self, Helper};

pub struct Provider {
    _process: Helper,
    pub issuer: String,
    pub token_endpoint: String,
}

impl Provider {
    /// Starts the provider with `env`; `None` when interop tests are skipped.
    pub fn start(env: &[(&str, &std::ffi::OsStr)]) -> Option<Provider> {
        if helper::skipped("oidc-provider") {
            return None;
        }
        helper::require(
            &helper::repo_path("tests/interop/node_modules/oidc-provider"),
            "oidc-provider",
        );
        let mut command = helper::node();
        command
            .arg(helper::repo_path("tests/interop/provider.mjs"))
            .envs(env.iter().copied());
        let process = Helper::start("oidc-provider", command);
        Some(Provider {
            issuer: process.field("issuer"),
            token_endpoint: process.field("token_endpoint"),
            _process: process,
        })
    }
}
