//! The machinery behind the registry of kinds (the `registry!` list in
//! `connectors/mod.rs`, one line per kind): from that list come each kind's
//! module, the config's [`TargetKind`] (with its name, settings, defaults
//! and checks) and [`super::AnyConnector`], which dispatches to the kind's
//! connector.

use super::TargetKind;

/// `module::Connector => Variant,` per kind: declares the module, and
/// generates [`TargetKind`] and [`super::AnyConnector`] with a variant per kind.
macro_rules! registry {
    ($($(#[$attr:meta])* $module:ident :: $type:ident => $variant:ident,)*) => {
        $($(#[$attr])* pub mod $module;)*

        registry!(@generate $($(#[$attr])* $variant => $module::$type,)*);
    };
    (@generate $($(#[$attr:meta])* $variant:ident => $connector:ty,)*) => {
        /// A target's `kind`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum TargetKind {
            $($(#[$attr])* $variant,)*
        }

        /// The connector of a target, whatever its kind.
        pub enum AnyConnector {
            $($(#[$attr])* $variant($connector),)*
        }

        impl TargetKind {
            /// Every kind, in registry order.
            pub const ALL: &'static [TargetKind] = &[$($(#[$attr])* TargetKind::$variant,)*];

            /// Every kind's name, in registry order.
            pub const NAMES: &'static [&'static str] =
                &[$($(#[$attr])* <$connector as $crate::connectors::Connector>::KIND,)*];

            /// Its name in the config (`kind = "..."`).
            pub fn name(self) -> &'static str {
                match self {
                    $($(#[$attr])* TargetKind::$variant => <$connector as $crate::connectors::Connector>::KIND,)*
                }
            }

            /// What its targets are configured with.
            pub fn settings(self) -> $crate::connectors::Settings {
                match self {
                    $($(#[$attr])* TargetKind::$variant => <$connector as $crate::connectors::Connector>::SETTINGS,)*
                }
            }

            /// The canonical fields it can find an account by (`match`);
            /// none for a kind that upserts by its own key.
            pub fn match_fields(self) -> &'static [$crate::ingest::record::Field] {
                match self {
                    $($(#[$attr])* TargetKind::$variant => <$connector as $crate::connectors::Connector>::MATCH_FIELDS,)*
                }
            }

            /// Whether its API can remove an account (`delete_after`).
            pub fn deletes(self) -> bool {
                match self {
                    $($(#[$attr])* TargetKind::$variant => <$connector as $crate::connectors::Connector>::DELETES,)*
                }
            }

            /// Its default mappings.
            pub fn default_fields(self) -> $crate::projection::DefaultFields {
                match self {
                    $($(#[$attr])* TargetKind::$variant => <$connector as $crate::connectors::Connector>::default_fields(),)*
                }
            }

            /// Its config rules of its own, on a target of this kind.
            pub fn check_config(
                self,
                target: &$crate::config::TargetConfig,
            ) -> Vec<$crate::connectors::SettingProblem> {
                match self {
                    $($(#[$attr])* TargetKind::$variant => <$connector as $crate::connectors::Connector>::check_config(target),)*
                }
            }
        }

        impl AnyConnector {
            pub fn from_config(
                target: &$crate::config::TargetConfig,
            ) -> Result<AnyConnector, $crate::connectors::ConnectorError> {
                let connector = match target.kind {
                    $($(#[$attr])* TargetKind::$variant => {
                        <$connector as $crate::connectors::Connector>::from_config(target).map(AnyConnector::$variant)
                    })*
                };
                connector.map_err(|error| $crate::connectors::ConnectorError::Settings {
                    target: target.name.get_ref().clone(),
                    error,
                })
            }

            /// How many records one request (or file) carries at most.
            pub fn batch_size(&self) -> usize {
                match self {
                    $($(#[$attr])* AnyConnector::$variant(c) => c.batch_size(),)*
                }
            }

            /// Sends records; one outcome per item, in the same order.
            pub async fn push(
                &self,
                items: &[$crate::connectors::PushItem],
            ) -> $crate::connectors::PushReply {
                match self {
                    $($(#[$attr])* AnyConnector::$variant(c) => c.push(items).await,)*
                }
            }

            /// [`AnyConnector::push`], asking `holders` which accounts of the
            /// target other records hold (for the kinds that adopt accounts).
            pub async fn push_with(
                &self,
                items: &[$crate::connectors::PushItem],
                holders: &dyn $crate::connectors::adopt::Holders,
            ) -> $crate::connectors::PushReply {
                match self {
                    $($(#[$attr])* AnyConnector::$variant(c) => c.push_with(items, holders).await,)*
                }
            }

            /// Reaches the target and tries its credentials (`check --online`).
            pub async fn check(&self) -> Result<(), $crate::connectors::CheckError> {
                match self {
                    $($(#[$attr])* AnyConnector::$variant(c) => c.check().await,)*
                }
            }

            /// Why nothing can be sent to the target right now, whatever the record.
            pub fn refusal(&self) -> Option<$crate::connectors::Refusal> {
                match self {
                    $($(#[$attr])* AnyConnector::$variant(c) => c.refusal(),)*
                }
            }
        }
    };
}

impl TargetKind {
    /// The kind of this name, if there is one.
    pub fn from_name(name: &str) -> Option<TargetKind> {
        TargetKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.name() == name)
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// As serde derives it for a unit enum (the same messages, such as
/// ``unknown variant `x`, expected one of ...``), from the registry's names.
impl<'de> serde::Deserialize<'de> for TargetKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<TargetKind, D::Error> {
        use serde::de::{self, EnumAccess, VariantAccess};

        struct Name;
        impl<'de> de::Visitor<'de> for Name {
            type Value = TargetKind;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("variant identifier")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<TargetKind, E> {
                TargetKind::from_name(name)
                    .ok_or_else(|| E::unknown_variant(name, TargetKind::NAMES))
            }
        }
        impl<'de> de::DeserializeSeed<'de> for Name {
            type Value = TargetKind;
            fn deserialize<D: serde::Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<TargetKind, D::Error> {
                deserializer.deserialize_identifier(Name)
            }
        }
        struct Kind;
        impl<'de> de::Visitor<'de> for Kind {
            type Value = TargetKind;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("enum TargetKind")
            }
            fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<TargetKind, A::Error> {
                let (kind, variant) = data.variant_seed(Name)?;
                variant.unit_variant()?;
                Ok(kind)
            }
        }
        deserializer.deserialize_enum("TargetKind", TargetKind::NAMES, Kind)
    }
}
