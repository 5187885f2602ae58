//! The credentials a client keeps between runs, keyed by issuer and resource.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Client, Tokens};

/// [`Tokens`] kept between runs, keyed by issuer, then by resource (canonical URI); serialized
/// as `{"<issuer>": {"<resource>": tokens}}`.
///
/// A resource has the credentials of one issuer at most: the one it named last. Tokens
/// obtained from authorization server X for resource R are dropped once R names another
/// authorization server Y ([`TokenStore::insert`] of Y's tokens, or [`TokenStore::sync`] with
/// a client that discovered Y), so they are never offered to R again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenStore(BTreeMap<String, BTreeMap<String, Tokens>>);

impl TokenStore {
    /// The credentials for `resource` (canonical URI), for [`Client::resume`]: those of its
    /// one issuer. `None` when no issuer, or more than one, holds some for it (a store written
    /// before this rule): the client then finds out which one the resource names.
    // spec: CLI-5
    pub fn get(&self, resource: &str) -> Option<&Tokens> {
        let mut found = self.0.values().filter_map(|by| by.get(resource));
        let tokens = found.next()?;
        found.next().is_none().then_some(tokens)
    }

    /// Keep `tokens` under their issuer and resource, and drop every other issuer's
    /// credentials for that resource (the resource named this issuer to obtain them).
    // spec: CLI-5, RT-7
    pub fn insert(&mut self, tokens: Tokens) {
        self.keep_only(&tokens.resource, &tokens.issuer);
        self.0
            .entry(tokens.issuer.clone())
            .or_default()
            .insert(tokens.resource.clone(), tokens);
    }

    /// Bring the store in line with `client`: no credentials of another issuer than the one
    /// its resource named ([`Client::authorization_server`]), and the tokens it holds, if any.
    /// Drivers call it whenever a flow of the client ends, so that rotated refresh tokens are
    /// kept ([RT-7](crate::requirements#RT-7)) and superseded ones are not offered again.
    // spec: CLI-5, RT-7
    pub fn sync(&mut self, client: &Client) {
        let Ok(resource) = client.resource() else {
            return;
        };
        if let Some(issuer) = client.authorization_server() {
            self.keep_only(resource.as_str(), issuer);
        }
        if let Some(tokens) = client.tokens() {
            self.insert(tokens.clone());
        }
    }

    /// Remove and return every credential for `resource` (logout).
    pub fn remove(&mut self, resource: &str) -> Vec<Tokens> {
        let removed = self
            .0
            .values_mut()
            .filter_map(|by| by.remove(resource))
            .collect();
        self.0.retain(|_, by| !by.is_empty());
        removed
    }

    /// Every credential with its issuer and resource.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &Tokens)> {
        self.0.iter().flat_map(|(issuer, by)| {
            by.iter()
                .map(move |(resource, tokens)| (issuer.as_str(), resource.as_str(), tokens))
        })
    }

    /// Is the store empty?
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Drop the credentials of every issuer but `issuer` for `resource`.
    fn keep_only(&mut self, resource: &str, issuer: &str) {
        for (i, by) in &mut self.0 {
            if i != issuer {
                by.remove(resource);
            }
        }
        self.0.retain(|_, by| !by.is_empty());
    }
}
