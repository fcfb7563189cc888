//! Closed sets of label values. One table per enum gives each value its label string and lists
//! every value (for the zero series that let `rate()` see a first increment); call sites pass the
//! enum and only the metrics turn it into a string.

/// Declares a fieldless enum with `ALL`, `as_str` and `from_label`, from one table of
/// `Variant = "label"` rows.
macro_rules! label_enum {
    ($(#[$meta:meta])* pub(crate) enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $label:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order of the table.
            // Generated for every table; not every enum has zero series to make or labels to read.
            #[allow(dead_code)]
            pub(crate) const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The label value.
            pub(crate) const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            /// The value whose label is `label`.
            #[allow(dead_code)]
            pub(crate) fn from_label(label: &str) -> Option<Self> {
                match label {
                    $($label => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use label_enum;
