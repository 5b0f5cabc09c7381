//! The registry: the one place that lists the target kinds. Each line names
//! a kind's variant and its [`Connector`]; from that list come the config's
//! [`TargetKind`] (with its name, settings, defaults and checks) and
//! [`AnyConnector`], which dispatches to the kind's connector.

use super::{
    CheckError, Connector, ConnectorError, PushItem, PushReply, SettingProblem, Settings,
    collaborator, gestimum, maarch, pleasanter, scim, wbt_file,
};
use crate::config::TargetConfig;
use crate::projection::DefaultFields;

macro_rules! registry {
    ($($(#[$attr:meta])* $variant:ident => $connector:ty,)*) => {
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
                &[$($(#[$attr])* <$connector as Connector>::KIND,)*];

            /// Its name in the config (`kind = "..."`).
            pub fn name(self) -> &'static str {
                match self {
                    $($(#[$attr])* TargetKind::$variant => <$connector as Connector>::KIND,)*
                }
            }

            /// What its targets are configured with.
            pub fn settings(self) -> Settings {
                match self {
                    $($(#[$attr])* TargetKind::$variant => <$connector as Connector>::SETTINGS,)*
                }
            }

            /// Its default mappings.
            pub fn default_fields(self) -> DefaultFields {
                match self {
                    $($(#[$attr])* TargetKind::$variant => <$connector as Connector>::default_fields(),)*
                }
            }

            /// Its config rules of its own, on a target of this kind.
            pub fn check_config(self, target: &TargetConfig) -> Vec<SettingProblem> {
                match self {
                    $($(#[$attr])* TargetKind::$variant => <$connector as Connector>::check_config(target),)*
                }
            }
        }

        impl AnyConnector {
            pub fn from_config(target: &TargetConfig) -> Result<AnyConnector, ConnectorError> {
                let connector = match target.kind {
                    $($(#[$attr])* TargetKind::$variant => {
                        <$connector as Connector>::from_config(target).map(AnyConnector::$variant)
                    })*
                };
                connector.map_err(|source| ConnectorError::Settings {
                    target: target.name.get_ref().clone(),
                    source,
                })
            }

            /// How many records one request (or file) carries at most.
            pub fn batch_size(&self) -> usize {
                match self {
                    $($(#[$attr])* AnyConnector::$variant(c) => c.batch_size(),)*
                }
            }

            /// Sends records; one outcome per item, in the same order.
            pub async fn push(&self, items: &[PushItem]) -> PushReply {
                match self {
                    $($(#[$attr])* AnyConnector::$variant(c) => c.push(items).await,)*
                }
            }

            /// Reaches the target and tries its credentials (`check --online`).
            pub async fn check(&self) -> Result<(), CheckError> {
                match self {
                    $($(#[$attr])* AnyConnector::$variant(c) => c.check().await,)*
                }
            }
        }
    };
}

// One line per kind; the order is the order `rostersync check` lists them in.
registry! {
    Collaborator => collaborator::Collaborator,
    Maarch => maarch::Maarch,
    Gestimum => gestimum::Gestimum,
    Pleasanter => pleasanter::Pleasanter,
    Scim => scim::Scim,
    WbtFile => wbt_file::WbtFile,
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
