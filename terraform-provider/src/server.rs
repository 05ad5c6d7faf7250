//! The tfplugin6 `Provider` service: decodes each request with the right schema, hands it to
//! the provider, a resource or a data source, and encodes the answer.
//!
//! Nothing here knows Conflux; nothing in `resources/` knows gRPC. Every failure, including
//! a panic in a resource, becomes a diagnostic in the response: the plugin process never
//! crashes under Terraform.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};

use futures::FutureExt;
use tonic::{Request, Response, Status};

use crate::api::Api;
use crate::data_sources::{self, DataSource};
use crate::proto::tfplugin6 as pb;
use crate::protocol::codec::{decode_dynamic, decode_json, encode_dynamic};
use crate::protocol::diag::{Diagnostic, Diagnostics};
use crate::protocol::schema::Schema;
use crate::protocol::value::{Obj, Type, Value};
use crate::provider;
use crate::resources::{self, Resource};

struct ResourceEntry {
    resource: Arc<dyn Resource>,
    schema: Schema,
    ty: Type,
}

struct DataEntry {
    source: Arc<dyn DataSource>,
    schema: Schema,
    ty: Type,
}

pub struct ProviderService {
    resources: BTreeMap<&'static str, ResourceEntry>,
    data_sources: BTreeMap<&'static str, DataEntry>,
    provider_schema: Schema,
    api: RwLock<Option<Api>>,
    /// Set by `StopProvider`: ends long waits of operations in flight.
    stop: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for ProviderService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderService")
            .field("resources", &self.resources.keys().collect::<Vec<_>>())
            .field(
                "data_sources",
                &self.data_sources.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

type Rpc<T> = Result<Response<T>, Status>;

/// Runs a resource operation, turning a panic into an error diagnostic.
async fn guarded<T>(fut: impl Future<Output = Result<T, Diagnostics>>) -> Result<T, Diagnostics> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(Diagnostic::error(
                "Internal error in the conflux provider",
                format!("{msg}. This is a bug; please report it."),
            )
            .into())
        }
    }
}

fn codec_error(e: crate::error::Error) -> Diagnostics {
    Diagnostic::error("Invalid value from Terraform", e.to_string()).into()
}

fn decode(dv: Option<&pb::DynamicValue>, ty: &Type) -> Result<Value, Diagnostics> {
    decode_dynamic(dv, ty).map_err(codec_error)
}

fn encode(v: &Value, ty: &Type) -> Result<pb::DynamicValue, Diagnostics> {
    encode_dynamic(v, ty).map_err(|e| {
        Diagnostic::error(
            "Internal error in the conflux provider",
            format!("cannot encode the new state: {e}"),
        )
        .into()
    })
}

fn obj_of(v: Value) -> Obj {
    Obj::root(v).unwrap_or_default()
}

impl Default for ProviderService {
    fn default() -> Self {
        ProviderService::new()
    }
}

impl ProviderService {
    pub fn new() -> ProviderService {
        let resources = resources::all()
            .into_iter()
            .map(|r| {
                let schema = r.schema();
                let ty = schema.value_type();
                (
                    r.type_name(),
                    ResourceEntry {
                        resource: r,
                        schema,
                        ty,
                    },
                )
            })
            .collect();
        let data_sources = data_sources::all()
            .into_iter()
            .map(|d| {
                let schema = d.schema();
                let ty = schema.value_type();
                (
                    d.type_name(),
                    DataEntry {
                        source: d,
                        schema,
                        ty,
                    },
                )
            })
            .collect();
        ProviderService {
            resources,
            data_sources,
            provider_schema: provider::schema(),
            api: RwLock::new(None),
            stop: tokio::sync::watch::Sender::new(false),
        }
    }

    fn resource(&self, type_name: &str) -> Result<&ResourceEntry, Diagnostics> {
        self.resources.get(type_name).ok_or_else(|| {
            Diagnostic::error(
                "Unknown resource type",
                format!("the conflux provider has no resource type {type_name:?}"),
            )
            .into()
        })
    }

    fn data_source(&self, type_name: &str) -> Result<&DataEntry, Diagnostics> {
        self.data_sources.get(type_name).ok_or_else(|| {
            Diagnostic::error(
                "Unknown data source",
                format!("the conflux provider has no data source {type_name:?}"),
            )
            .into()
        })
    }

    fn api(&self) -> Result<Api, Diagnostics> {
        self.api.read().ok().and_then(|a| a.clone()).ok_or_else(|| {
            Diagnostic::error(
                "Provider not configured",
                "Terraform called the conflux provider before configuring it",
            )
            .into()
        })
    }

    fn configured_api(&self) -> Option<Api> {
        self.api.read().ok().and_then(|a| a.clone())
    }

    async fn plan(
        &self,
        req: &pb::plan_resource_change::Request,
    ) -> Result<(pb::DynamicValue, Vec<pb::AttributePath>), Diagnostics> {
        let e = self.resource(&req.type_name)?;
        let prior = decode(req.prior_state.as_ref(), &e.ty)?;
        let proposed = decode(req.proposed_new_state.as_ref(), &e.ty)?;
        let config = decode(req.config.as_ref(), &e.ty)?;
        let Some(proposed) = Obj::root(proposed) else {
            // Destroy: nothing to plan.
            return Ok((encode(&Value::Null, &e.ty)?, Vec::new()));
        };
        let prior = Obj::root(prior);
        let (planned, replace) = resources::plan(
            e.resource.as_ref(),
            &e.schema,
            prior.as_ref(),
            proposed,
            &obj_of(config),
        );
        if let Some(api) = self.configured_api() {
            guarded(e.resource.check_plan(&api, &planned, prior.as_ref())).await?;
        }
        Ok((
            encode(&planned.into_value(), &e.ty)?,
            replace.iter().map(|p| p.to_proto()).collect(),
        ))
    }

    /// Applies a planned change; on failure also returns the state Terraform should keep.
    async fn apply(
        &self,
        req: &pb::apply_resource_change::Request,
    ) -> (Option<pb::DynamicValue>, Diagnostics) {
        let e = match self.resource(&req.type_name) {
            Ok(e) => e,
            Err(d) => return (None, d),
        };
        let decoded = decode(req.prior_state.as_ref(), &e.ty)
            .and_then(|p| Ok((p, decode(req.planned_state.as_ref(), &e.ty)?)));
        let (prior, planned) = match decoded {
            Ok(v) => v,
            Err(d) => return (req.prior_state.clone(), d),
        };
        let api = match self.api() {
            Ok(a) => a,
            Err(d) => return (req.prior_state.clone(), d),
        };
        let (prior, planned) = (Obj::root(prior), Obj::root(planned));
        let r = match (&prior, &planned) {
            (Some(p), None) => guarded(e.resource.delete(&api, p)).await.map(|()| None),
            (None, Some(n)) => guarded(e.resource.create(&api, n)).await.map(Some),
            (Some(p), Some(n)) => guarded(e.resource.update(&api, p, n)).await.map(Some),
            (None, None) => Ok(None),
        };
        match r {
            Ok(new) => {
                let v = new.map_or(Value::Null, Obj::into_value);
                match encode(&v, &e.ty) {
                    Ok(dv) => (Some(dv), Diagnostics::default()),
                    Err(d) => (req.prior_state.clone(), d),
                }
            }
            // A failed create leaves nothing; a failed update or delete leaves the prior state.
            Err(d) => (req.prior_state.clone(), d),
        }
    }
}

#[tonic::async_trait]
impl pb::provider_server::Provider for ProviderService {
    async fn get_metadata(
        &self,
        _: Request<pb::get_metadata::Request>,
    ) -> Rpc<pb::get_metadata::Response> {
        Ok(Response::new(pb::get_metadata::Response {
            server_capabilities: Some(pb::ServerCapabilities::default()),
            diagnostics: Vec::new(),
            data_sources: self
                .data_sources
                .keys()
                .map(|t| pb::get_metadata::DataSourceMetadata {
                    type_name: (*t).to_owned(),
                })
                .collect(),
            resources: self
                .resources
                .keys()
                .map(|t| pb::get_metadata::ResourceMetadata {
                    type_name: (*t).to_owned(),
                })
                .collect(),
        }))
    }

    async fn get_provider_schema(
        &self,
        _: Request<pb::get_provider_schema::Request>,
    ) -> Rpc<pb::get_provider_schema::Response> {
        Ok(Response::new(pb::get_provider_schema::Response {
            provider: Some(self.provider_schema.to_proto()),
            resource_schemas: self
                .resources
                .iter()
                .map(|(k, e)| ((*k).to_owned(), e.schema.to_proto()))
                .collect(),
            data_source_schemas: self
                .data_sources
                .iter()
                .map(|(k, e)| ((*k).to_owned(), e.schema.to_proto()))
                .collect(),
            diagnostics: Vec::new(),
            provider_meta: None,
            server_capabilities: Some(pb::ServerCapabilities::default()),
        }))
    }

    async fn validate_provider_config(
        &self,
        request: Request<pb::validate_provider_config::Request>,
    ) -> Rpc<pb::validate_provider_config::Response> {
        let req = request.into_inner();
        let ty = self.provider_schema.value_type();
        let mut diags = Diagnostics::default();
        match decode(req.config.as_ref(), &ty) {
            Ok(v) => provider::validate(&obj_of(v), &mut diags),
            Err(d) => diags.extend(d),
        }
        Ok(Response::new(pb::validate_provider_config::Response {
            diagnostics: diags.to_proto(),
        }))
    }

    async fn validate_resource_config(
        &self,
        request: Request<pb::validate_resource_config::Request>,
    ) -> Rpc<pb::validate_resource_config::Response> {
        let req = request.into_inner();
        let mut diags = Diagnostics::default();
        match self.resource(&req.type_name).and_then(|e| {
            let v = decode(req.config.as_ref(), &e.ty)?;
            Ok((e, v))
        }) {
            Ok((e, v)) => e.resource.validate(&obj_of(v), &mut diags),
            Err(d) => diags.extend(d),
        }
        Ok(Response::new(pb::validate_resource_config::Response {
            diagnostics: diags.to_proto(),
        }))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<pb::validate_data_resource_config::Request>,
    ) -> Rpc<pb::validate_data_resource_config::Response> {
        let req = request.into_inner();
        let mut diags = Diagnostics::default();
        match self.data_source(&req.type_name).and_then(|e| {
            let v = decode(req.config.as_ref(), &e.ty)?;
            Ok((e, v))
        }) {
            Ok((e, v)) => e.source.validate(&obj_of(v), &mut diags),
            Err(d) => diags.extend(d),
        }
        Ok(Response::new(pb::validate_data_resource_config::Response {
            diagnostics: diags.to_proto(),
        }))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<pb::upgrade_resource_state::Request>,
    ) -> Rpc<pb::upgrade_resource_state::Response> {
        let req = request.into_inner();
        let r = self.resource(&req.type_name).and_then(|e| {
            let raw = req.raw_state.unwrap_or_default();
            if raw.json.is_empty() {
                if raw.flatmap.is_empty() {
                    return encode(&Value::Null, &e.ty);
                }
                return Err(Diagnostic::error(
                    "Unsupported state",
                    "this state was written in the legacy flatmap format, which the conflux provider never used",
                )
                .into());
            }
            // Schema version 0 is the only one so far: the stored JSON decodes as is
            // (attributes since removed are dropped, new ones are null).
            let v = decode_json(&raw.json, &e.ty).map_err(codec_error)?;
            encode(&v, &e.ty)
        });
        let (upgraded_state, diagnostics) = match r {
            Ok(dv) => (Some(dv), Vec::new()),
            Err(d) => (None, d.to_proto()),
        };
        Ok(Response::new(pb::upgrade_resource_state::Response {
            upgraded_state,
            diagnostics,
        }))
    }

    async fn configure_provider(
        &self,
        request: Request<pb::configure_provider::Request>,
    ) -> Rpc<pb::configure_provider::Response> {
        let req = request.into_inner();
        let ty = self.provider_schema.value_type();
        let r = decode(req.config.as_ref(), &ty)
            .and_then(|v| provider::configure(&obj_of(v), |k| std::env::var(k).ok()));
        let diagnostics = match r {
            Ok(api) => {
                if let Ok(mut slot) = self.api.write() {
                    *slot = Some(api.with_stop(self.stop.subscribe()));
                }
                Vec::new()
            }
            Err(d) => d.to_proto(),
        };
        Ok(Response::new(pb::configure_provider::Response {
            diagnostics,
        }))
    }

    async fn read_resource(
        &self,
        request: Request<pb::read_resource::Request>,
    ) -> Rpc<pb::read_resource::Response> {
        let req = request.into_inner();
        let r = async {
            let e = self.resource(&req.type_name)?;
            let current = decode(req.current_state.as_ref(), &e.ty)?;
            let Some(state) = Obj::root(current) else {
                return encode(&Value::Null, &e.ty);
            };
            let api = self.api()?;
            let new = guarded(e.resource.read(&api, &state)).await?;
            encode(&new.map_or(Value::Null, Obj::into_value), &e.ty)
        }
        .await;
        let (new_state, diagnostics) = match r {
            Ok(dv) => (Some(dv), Vec::new()),
            // Keep the current state so nothing is forgotten because of a failed read.
            Err(d) => (req.current_state.clone(), d.to_proto()),
        };
        Ok(Response::new(pb::read_resource::Response {
            new_state,
            diagnostics,
            private: req.private,
        }))
    }

    async fn plan_resource_change(
        &self,
        request: Request<pb::plan_resource_change::Request>,
    ) -> Rpc<pb::plan_resource_change::Response> {
        let req = request.into_inner();
        let (planned_state, requires_replace, diagnostics) = match self.plan(&req).await {
            Ok((p, r)) => (Some(p), r, Vec::new()),
            Err(d) => (None, Vec::new(), d.to_proto()),
        };
        Ok(Response::new(pb::plan_resource_change::Response {
            planned_state,
            requires_replace,
            planned_private: req.prior_private,
            diagnostics,
            legacy_type_system: false,
        }))
    }

    async fn apply_resource_change(
        &self,
        request: Request<pb::apply_resource_change::Request>,
    ) -> Rpc<pb::apply_resource_change::Response> {
        let req = request.into_inner();
        let (new_state, diags) = self.apply(&req).await;
        Ok(Response::new(pb::apply_resource_change::Response {
            new_state,
            private: req.planned_private,
            diagnostics: diags.to_proto(),
            legacy_type_system: false,
        }))
    }

    async fn import_resource_state(
        &self,
        request: Request<pb::import_resource_state::Request>,
    ) -> Rpc<pb::import_resource_state::Response> {
        let req = request.into_inner();
        let r = async {
            let e = self.resource(&req.type_name)?;
            let api = self.api()?;
            let state = guarded(e.resource.import(&api, &req.id)).await?;
            encode(&state.into_value(), &e.ty)
        }
        .await;
        let (imported_resources, diagnostics) = match r {
            Ok(state) => (
                vec![pb::import_resource_state::ImportedResource {
                    type_name: req.type_name.clone(),
                    state: Some(state),
                    private: Vec::new(),
                }],
                Vec::new(),
            ),
            Err(d) => (Vec::new(), d.to_proto()),
        };
        Ok(Response::new(pb::import_resource_state::Response {
            imported_resources,
            diagnostics,
        }))
    }

    async fn read_data_source(
        &self,
        request: Request<pb::read_data_source::Request>,
    ) -> Rpc<pb::read_data_source::Response> {
        let req = request.into_inner();
        let r = async {
            let e = self.data_source(&req.type_name)?;
            let config = obj_of(decode(req.config.as_ref(), &e.ty)?);
            let api = self.api()?;
            let state = guarded(e.source.read(&api, &config)).await?;
            encode(&state.into_value(), &e.ty)
        }
        .await;
        let (state, diagnostics) = match r {
            Ok(s) => (Some(s), Vec::new()),
            Err(d) => (None, d.to_proto()),
        };
        Ok(Response::new(pb::read_data_source::Response {
            state,
            diagnostics,
        }))
    }

    async fn stop_provider(
        &self,
        _: Request<pb::stop_provider::Request>,
    ) -> Rpc<pb::stop_provider::Response> {
        // Requests in flight finish on their own (each is bounded by the client timeout);
        // waits for a proposal's approval end now, with an error naming the proposal.
        self.stop.send_replace(true);
        Ok(Response::new(pb::stop_provider::Response {
            error: String::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tfplugin6::provider_server::Provider as _;

    fn dv(v: &Value, ty: &Type) -> Option<pb::DynamicValue> {
        Some(encode_dynamic(v, ty).unwrap())
    }

    #[tokio::test]
    async fn the_schema_lists_every_resource_and_data_source() {
        let s = ProviderService::new();
        let r = s
            .get_provider_schema(Request::new(pb::get_provider_schema::Request {}))
            .await
            .unwrap()
            .into_inner();
        let mut resources: Vec<_> = r.resource_schemas.keys().cloned().collect();
        resources.sort();
        assert_eq!(
            resources,
            [
                "conflux_app",
                "conflux_config",
                "conflux_environment",
                "conflux_release",
                "conflux_release_policy",
                "conflux_role_binding",
                "conflux_service_token",
                "conflux_tenant",
                "conflux_webhook",
            ]
        );
        assert_eq!(r.data_source_schemas.len(), 3);
        // Every attribute type is valid compact JSON.
        for schema in r
            .resource_schemas
            .values()
            .chain(r.data_source_schemas.values())
        {
            for a in &schema.block.as_ref().unwrap().attributes {
                serde_json::from_slice::<serde_json::Value>(&a.r#type).unwrap();
                assert!(a.required || a.optional || a.computed, "{}", a.name);
            }
        }
        let token = r.provider.unwrap().block.unwrap().attributes;
        assert!(token.iter().any(|a| a.name == "token" && a.sensitive));
    }

    #[tokio::test]
    async fn validation_names_the_attribute() {
        let s = ProviderService::new();
        let e = s.resource("conflux_app").unwrap();
        let config = Obj::new()
            .with("tenant", Value::string("acme"))
            .with("name", Value::string("Bad Name"))
            .into_value();
        let r = s
            .validate_resource_config(Request::new(pb::validate_resource_config::Request {
                type_name: "conflux_app".into(),
                config: dv(&config, &e.ty),
                client_capabilities: None,
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.diagnostics.len(), 1);
        let path = r.diagnostics[0].attribute.as_ref().unwrap();
        assert_eq!(
            path.steps[0].selector,
            Some(pb::attribute_path::step::Selector::AttributeName(
                "name".into()
            ))
        );
        let r = s
            .validate_resource_config(Request::new(pb::validate_resource_config::Request {
                type_name: "conflux_nothing".into(),
                config: None,
                client_capabilities: None,
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.diagnostics[0].summary, "Unknown resource type");
    }

    #[tokio::test]
    async fn planning_a_create_needs_no_server() {
        let s = ProviderService::new();
        let e = s.resource("conflux_tenant").unwrap();
        let config = Obj::new().with("name", Value::string("acme")).into_value();
        let r = s
            .plan_resource_change(Request::new(pb::plan_resource_change::Request {
                type_name: "conflux_tenant".into(),
                prior_state: dv(&Value::Null, &e.ty),
                proposed_new_state: dv(&config, &e.ty),
                config: dv(&config, &e.ty),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
        let planned = decode_dynamic(r.planned_state.as_ref(), &e.ty).unwrap();
        let planned = Obj::root(planned).unwrap();
        assert_eq!(planned.get("display_name"), &Value::string("acme"));
        assert_eq!(planned.get("id"), &Value::Unknown);
        assert_eq!(planned.get("quotas"), &Value::Null);
    }

    #[tokio::test]
    async fn operations_before_configure_are_diagnostics() {
        let s = ProviderService::new();
        let e = s.resource("conflux_tenant").unwrap();
        let state = Obj::new().with("name", Value::string("acme")).into_value();
        let r = s
            .read_resource(Request::new(pb::read_resource::Request {
                type_name: "conflux_tenant".into(),
                current_state: dv(&state, &e.ty),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.diagnostics[0].summary, "Provider not configured");
        // The state is kept, not dropped.
        assert_eq!(r.new_state, dv(&state, &e.ty));
    }

    #[tokio::test]
    async fn stored_json_states_upgrade_to_msgpack() {
        let s = ProviderService::new();
        let e = s.resource("conflux_app").unwrap();
        let r = s
            .upgrade_resource_state(Request::new(pb::upgrade_resource_state::Request {
                type_name: "conflux_app".into(),
                version: 0,
                raw_state: Some(pb::RawState {
                    json: br#"{"id":"a/b","tenant":"a","name":"b","description":"","gone":1}"#
                        .to_vec(),
                    flatmap: Default::default(),
                }),
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(r.diagnostics.is_empty());
        let v = Obj::root(decode_dynamic(r.upgraded_state.as_ref(), &e.ty).unwrap()).unwrap();
        assert_eq!(v.get("id"), &Value::string("a/b"));
    }
}
