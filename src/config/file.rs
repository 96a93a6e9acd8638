//! The raw shape of `sources.yaml`, exactly as serde reads it.
//!
//! These types only say which keys exist and what YAML shape each takes; every rule that
//! relates one field to another lives in `validate.rs`. Unknown and duplicate keys are
//! rejected here, including duplicate source ids, which serde's own maps would let the last
//! one win silently.

use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::locate::RaiseHere;
use super::resolve::SecretRef;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub sources: UniqueMap<FileSource>,
    #[serde(default)]
    pub callers: Option<UniqueMap<FileCaller>>,
}

/// One entry under `sources:`. Field names are the MCP tools-provider's, so an existing
/// entry needs only `upstream` added.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    pub upstream: Option<String>,
    pub auth_type: Option<String>,

    pub basic_username: Option<String>,
    pub basic_password: Option<SecretRef>,

    pub api_key_name: Option<String>,
    pub api_key_value: Option<SecretRef>,
    pub api_key_in: Option<String>,

    pub bearer_token: Option<SecretRef>,

    pub oauth2_token_url: Option<String>,
    pub oauth2_client_id: Option<String>,
    pub oauth2_client_secret: Option<SecretRef>,
    pub oauth2_scopes: Option<Vec<String>>,
    pub oauth2_audience: Option<String>,
    pub oauth2_client_auth: Option<String>,
    pub token_exchange_audience: Option<String>,
    pub token_exchange_resource: Option<String>,
    pub token_exchange_subject_token_type: Option<String>,
    pub token_exchange_requested_token_type: Option<String>,
    pub token_exchange_subject_token: Option<SecretRef>,
    pub token_exchange_actor_token: Option<SecretRef>,
    /// `actor_token_type`; defaults to the access-token type like the subject's.
    pub token_exchange_actor_token_type: Option<String>,

    /// Values may be credentials (a second API key), so they are secrets.
    pub headers: Option<UniqueMap<SecretRef>>,
    pub tls_ca_file: Option<String>,
    pub tls_client_cert_file: Option<String>,
    pub tls_client_key_file: Option<String>,
}

/// One entry under `callers:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCaller {
    pub token_sha256: Option<String>,
    pub sources: Option<Vec<String>>,
}

/// A string-keyed map that keeps file order and rejects a repeated key.
#[derive(Debug)]
pub struct UniqueMap<V>(pub Vec<(String, V)>);

impl<V> Default for UniqueMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UniqueMapVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for UniqueMapVisitor<V> {
            type Value = UniqueMap<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(UniqueMap::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut seen = BTreeSet::new();
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        // Fail inside the duplicate's value, so the error carries its position.
                        let message = format!("duplicate key `{key}`");
                        map.next_value_seed(RaiseHere(&message))?;
                        return Err(de::Error::custom(message));
                    }
                    entries.push((key, map.next_value()?));
                }
                Ok(UniqueMap(entries))
            }
        }

        deserializer.deserialize_map(UniqueMapVisitor(PhantomData))
    }
}
