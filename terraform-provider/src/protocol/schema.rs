//! Schemas of the provider, its resources and data sources: what attributes and nested
//! blocks they have, which are required, optional or computed, and which are sensitive. One
//! [`Schema`] gives both the wire message Terraform reads and the [`Type`] the codec decodes
//! values with, so the two cannot disagree.

use std::collections::BTreeMap;

use crate::proto::tfplugin6 as pb;
use crate::protocol::value::Type;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Required,
    Optional,
    /// Set by the provider only.
    Computed,
    /// Set by the user, or by the provider (a default, or the server's value) when the user
    /// does not.
    OptionalComputed,
}

#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: &'static str,
    pub ty: Type,
    pub presence: Presence,
    pub sensitive: bool,
    pub description: &'static str,
}

impl Attribute {
    fn new(name: &'static str, ty: Type, presence: Presence, description: &'static str) -> Self {
        Attribute {
            name,
            ty,
            presence,
            sensitive: false,
            description,
        }
    }

    pub fn required(name: &'static str, ty: Type, description: &'static str) -> Self {
        Attribute::new(name, ty, Presence::Required, description)
    }

    pub fn optional(name: &'static str, ty: Type, description: &'static str) -> Self {
        Attribute::new(name, ty, Presence::Optional, description)
    }

    pub fn computed(name: &'static str, ty: Type, description: &'static str) -> Self {
        Attribute::new(name, ty, Presence::Computed, description)
    }

    pub fn optional_computed(name: &'static str, ty: Type, description: &'static str) -> Self {
        Attribute::new(name, ty, Presence::OptionalComputed, description)
    }

    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    pub fn is_computed(&self) -> bool {
        matches!(
            self.presence,
            Presence::Computed | Presence::OptionalComputed
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// At most one block; its value is an object or null.
    Single,
    /// An ordered list of blocks.
    List,
}

#[derive(Debug, Clone)]
pub struct NestedBlock {
    pub name: &'static str,
    pub block: Block,
    pub nesting: Nesting,
    pub min_items: i64,
    pub max_items: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Block {
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<NestedBlock>,
    pub description: &'static str,
}

impl Block {
    pub fn new(description: &'static str) -> Block {
        Block {
            description,
            ..Block::default()
        }
    }

    pub fn attr(mut self, a: Attribute) -> Block {
        self.attributes.push(a);
        self
    }

    pub fn single(mut self, name: &'static str, block: Block) -> Block {
        self.blocks.push(NestedBlock {
            name,
            block,
            nesting: Nesting::Single,
            min_items: 0,
            max_items: 0,
        });
        self
    }

    pub fn list(
        mut self,
        name: &'static str,
        block: Block,
        min_items: i64,
        max_items: i64,
    ) -> Block {
        self.blocks.push(NestedBlock {
            name,
            block,
            nesting: Nesting::List,
            min_items,
            max_items,
        });
        self
    }

    /// The object type of this block's values.
    pub fn value_type(&self) -> Type {
        let mut attrs: BTreeMap<String, Type> = self
            .attributes
            .iter()
            .map(|a| (a.name.to_owned(), a.ty.clone()))
            .collect();
        for b in &self.blocks {
            let t = b.block.value_type();
            attrs.insert(
                b.name.to_owned(),
                match b.nesting {
                    Nesting::Single => t,
                    Nesting::List => Type::list(t),
                },
            );
        }
        Type::Object(attrs)
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    pub fn nested(&self, name: &str) -> Option<&NestedBlock> {
        self.blocks.iter().find(|b| b.name == name)
    }

    /// Whether `name` is an attribute or nested block of this block.
    pub fn has(&self, name: &str) -> bool {
        self.attribute(name).is_some() || self.nested(name).is_some()
    }

    fn to_proto(&self) -> pb::schema::Block {
        pb::schema::Block {
            version: 0,
            attributes: self
                .attributes
                .iter()
                .map(|a| pb::schema::Attribute {
                    name: a.name.to_owned(),
                    r#type: a.ty.to_json().to_string().into_bytes(),
                    description: a.description.to_owned(),
                    required: a.presence == Presence::Required,
                    optional: matches!(a.presence, Presence::Optional | Presence::OptionalComputed),
                    computed: a.is_computed(),
                    sensitive: a.sensitive,
                    description_kind: pb::StringKind::Plain as i32,
                    deprecated: false,
                })
                .collect(),
            block_types: self
                .blocks
                .iter()
                .map(|b| pb::schema::NestedBlock {
                    type_name: b.name.to_owned(),
                    block: Some(b.block.to_proto()),
                    nesting: match b.nesting {
                        Nesting::Single => pb::schema::nested_block::NestingMode::Single,
                        Nesting::List => pb::schema::nested_block::NestingMode::List,
                    } as i32,
                    min_items: b.min_items,
                    max_items: b.max_items,
                })
                .collect(),
            description: self.description.to_owned(),
            description_kind: pb::StringKind::Plain as i32,
            deprecated: false,
        }
    }
}

/// A versioned schema. Every schema here is version 0: there is no older state to upgrade.
#[derive(Debug, Clone)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

impl Schema {
    pub fn new(block: Block) -> Schema {
        Schema { version: 0, block }
    }

    pub fn value_type(&self) -> Type {
        self.block.value_type()
    }

    pub fn to_proto(&self) -> pb::Schema {
        pb::Schema {
            version: self.version,
            block: Some(self.block.to_proto()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Schema {
        Schema::new(
            Block::new("a thing")
                .attr(Attribute::required("name", Type::String, "the name"))
                .attr(Attribute::optional("token", Type::String, "secret").sensitive())
                .attr(Attribute::computed("id", Type::Number, "the id"))
                .single(
                    "quotas",
                    Block::new("limits").attr(Attribute::optional_computed(
                        "max",
                        Type::Number,
                        "at most",
                    )),
                )
                .list(
                    "rule",
                    Block::new("a rule").attr(Attribute::optional(
                        "labels",
                        Type::map(Type::String),
                        "labels",
                    )),
                    1,
                    64,
                ),
        )
    }

    #[test]
    fn value_type_includes_attributes_and_blocks() {
        let t = sample().value_type();
        assert_eq!(
            t.to_json(),
            serde_json::json!(["object", {
                "name": "string",
                "token": "string",
                "id": "number",
                "quotas": ["object", {"max": "number"}],
                "rule": ["list", ["object", {"labels": ["map", "string"]}]],
            }])
        );
    }

    #[test]
    fn proto_carries_flags_types_and_nesting() {
        let p = sample().to_proto();
        let block = p.block.unwrap();
        let by_name = |n: &str| block.attributes.iter().find(|a| a.name == n).unwrap();
        assert!(by_name("name").required && !by_name("name").optional);
        assert!(by_name("token").optional && by_name("token").sensitive);
        assert!(by_name("id").computed && !by_name("id").optional);
        assert_eq!(by_name("id").r#type, b"\"number\"");
        let rule = block
            .block_types
            .iter()
            .find(|b| b.type_name == "rule")
            .unwrap();
        assert_eq!(
            rule.nesting,
            pb::schema::nested_block::NestingMode::List as i32
        );
        assert_eq!((rule.min_items, rule.max_items), (1, 64));
        let q = block
            .block_types
            .iter()
            .find(|b| b.type_name == "quotas")
            .unwrap();
        let max = &q.block.as_ref().unwrap().attributes[0];
        assert!(max.optional && max.computed);
    }
}
