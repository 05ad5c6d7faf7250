//! [`ApiClient`] methods of identity, access and audit (contract section 6): login and
//! logout, users, service tokens, role bindings and the audit log.
//!
//! They live apart from `client.rs` because they are a plane of their own (under
//! `/api/v1/auth`, `/users`, `/tokens`, `/role-bindings`, `/audit`, never `/api/v1/mgt`), but
//! they go through the same request code: the same bearer token, timeouts, percent-encoded
//! path segments and [`ClientError`]s. Secrets (passwords, the token a login or a token
//! creation returns) only travel in bodies, and the wire types redact them from `Debug`.
//!
//! None of these requests is retried or made idempotent here: a login or a token creation
//! repeated after a lost answer simply creates another session or token.

use conflux_api_types::{
    AuditPage, CreateRoleBinding, CreateToken, CreateUser, LoginRequest, LoginResponse,
    RoleBindingList, RoleBindingView, TokenCreated, TokenList, TokenView, UpdateUser, UserList,
    UserView, WhoAmI,
};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

use crate::client::{ApiClient, Body, json_body};
use crate::error::ClientError;
use crate::path::ApiPath;

const AUTH: &str = "/api/v1/auth";
const USERS: &str = "/api/v1/users";
const TOKENS: &str = "/api/v1/tokens";
const ROLE_BINDINGS: &str = "/api/v1/role-bindings";
const AUDIT: &str = "/api/v1/audit";

/// The filters of `GET /api/v1/audit`, each sent as a query parameter when set. Records come
/// newest first; pass an answer's `next_cursor` back as `cursor` for the next (older) page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only records of this tenant.
    pub tenant: Option<String>,
    /// Only records of this principal (`user:alice`, `token:<id>`).
    pub actor: Option<String>,
    /// Only records of this action.
    pub action: Option<String>,
    /// Only records at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only records before this time (RFC 3339).
    pub until: Option<String>,
    /// At most this many records (the server caps it).
    pub limit: Option<u32>,
    /// Where the previous page ended.
    pub cursor: Option<String>,
}

impl AuditQuery {
    fn apply(&self, path: ApiPath) -> ApiPath {
        path.query_opt("tenant", self.tenant.as_deref())
            .query_opt("actor", self.actor.as_deref())
            .query_opt("action", self.action.as_deref())
            .query_opt("since", self.since.as_deref())
            .query_opt("until", self.until.as_deref())
            .query_opt("limit", self.limit.map(|l| l.to_string()))
            .query_opt("cursor", self.cursor.as_deref())
    }
}

fn user_path(username: &str) -> Result<ApiPath, ClientError> {
    ApiPath::new(USERS).seg("username", username)
}

fn token_path(id: &str) -> Result<ApiPath, ClientError> {
    ApiPath::new(TOKENS).seg("id", id)
}

fn role_binding_path(id: &str) -> Result<ApiPath, ClientError> {
    ApiPath::new(ROLE_BINDINGS).seg("id", id)
}

impl ApiClient {
    async fn post_json<T: DeserializeOwned>(
        &self,
        path: ApiPath,
        body: Body,
    ) -> Result<T, ClientError> {
        self.send(Method::POST, &path, HeaderMap::new(), body)
            .await?
            .json()
    }

    /// A request whose answer has no body worth reading (204).
    async fn no_content(&self, method: Method, path: ApiPath) -> Result<(), ClientError> {
        self.send(method, &path, HeaderMap::new(), Body::Empty)
            .await?
            .no_content()
    }

    // ---- sessions -----------------------------------------------------------------------

    /// `POST /api/v1/auth/login`: a session token for a user. A wrong password and an
    /// unknown user both fail with 401 `invalid_credentials`; too many failures for one
    /// username with 429 `too_many_attempts`. The answer's `token` is a secret: build a new
    /// client with it ([`crate::ApiClientBuilder::bearer_token`]) rather than printing it.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<LoginResponse, ClientError> {
        let body = LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        self.post_json(ApiPath::new(AUTH).lit("login"), json_body(&body)?)
            .await
    }

    /// `POST /api/v1/auth/logout`: revokes the session token this client sends.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.no_content(Method::POST, ApiPath::new(AUTH).lit("logout"))
            .await
    }

    /// `GET /api/v1/auth/whoami`: the principal of this client's token and its bindings.
    pub async fn whoami(&self) -> Result<WhoAmI, ClientError> {
        self.get(ApiPath::new(AUTH).lit("whoami")).await
    }

    // ---- users --------------------------------------------------------------------------

    /// `POST /api/v1/users` (cluster_admin).
    pub async fn create_user(&self, body: &CreateUser) -> Result<UserView, ClientError> {
        self.post_json(ApiPath::new(USERS), json_body(body)?).await
    }

    pub async fn list_users(&self) -> Result<UserList, ClientError> {
        self.get(ApiPath::new(USERS)).await
    }

    pub async fn get_user(&self, username: &str) -> Result<UserView, ClientError> {
        self.get(user_path(username)?).await
    }

    /// `PATCH /api/v1/users/{username}`: a new password, (dis)abling; absent fields stay.
    /// Disabling a user ends its sessions.
    pub async fn update_user(
        &self,
        username: &str,
        body: &UpdateUser,
    ) -> Result<UserView, ClientError> {
        self.send(
            Method::PATCH,
            &user_path(username)?,
            HeaderMap::new(),
            json_body(body)?,
        )
        .await?
        .json()
    }

    /// Deletes a user and ends its sessions.
    pub async fn delete_user(&self, username: &str) -> Result<(), ClientError> {
        self.no_content(Method::DELETE, user_path(username)?).await
    }

    // ---- service tokens -----------------------------------------------------------------

    /// `POST /api/v1/tokens`: the answer is the only time the secret is ever shown.
    pub async fn create_token(&self, body: &CreateToken) -> Result<TokenCreated, ClientError> {
        self.post_json(ApiPath::new(TOKENS), json_body(body)?).await
    }

    /// The service tokens (never their secrets).
    pub async fn list_tokens(&self) -> Result<TokenList, ClientError> {
        self.get(ApiPath::new(TOKENS)).await
    }

    pub async fn get_token(&self, id: &str) -> Result<TokenView, ClientError> {
        self.get(token_path(id)?).await
    }

    /// Revokes a service token; within 2 s no node accepts it any more.
    pub async fn delete_token(&self, id: &str) -> Result<(), ClientError> {
        self.no_content(Method::DELETE, token_path(id)?).await
    }

    // ---- role bindings ------------------------------------------------------------------

    /// `POST /api/v1/role-bindings`: grants `role` on `scope` to `principal`
    /// (`user:<name>` or `token:<id>`).
    pub async fn create_role_binding(
        &self,
        body: &CreateRoleBinding,
    ) -> Result<RoleBindingView, ClientError> {
        self.post_json(ApiPath::new(ROLE_BINDINGS), json_body(body)?)
            .await
    }

    /// The bindings the caller may see, optionally only those of one principal and/or one
    /// scope.
    pub async fn list_role_bindings(
        &self,
        principal: Option<&str>,
        scope: Option<&str>,
    ) -> Result<RoleBindingList, ClientError> {
        let path = ApiPath::new(ROLE_BINDINGS)
            .query_opt("principal", principal)
            .query_opt("scope", scope);
        self.get(path).await
    }

    pub async fn get_role_binding(&self, id: &str) -> Result<RoleBindingView, ClientError> {
        self.get(role_binding_path(id)?).await
    }

    pub async fn delete_role_binding(&self, id: &str) -> Result<(), ClientError> {
        self.no_content(Method::DELETE, role_binding_path(id)?)
            .await
    }

    // ---- audit --------------------------------------------------------------------------

    /// `GET /api/v1/audit`: one page of audit records, newest first.
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, ClientError> {
        self.get(query.apply(ApiPath::new(AUDIT))).await
    }
}
