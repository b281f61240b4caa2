//! The CBV 2.0 vocabularies EPCIS JSON writes as bare words, and their expansion to full URIs.
//! The word lists are those of the GS1 EPCIS 2.0 JSON schema (`bizStep`, `disposition`, ... enums).

/// Base of the CBV web vocabulary (`https://ref.gs1.org/cbv/BizStep-shipping`).
pub const CBV_BASE: &str = "https://ref.gs1.org/cbv/";
/// Base of the GS1 web vocabulary (measurement types, sensor alert types).
pub const GS1_VOC_BASE: &str = "https://ref.gs1.org/voc/";

/// CBV business steps (schema `bizStep` enum): the list reference data checks a
/// process step's bizStep against.
pub const BIZ_STEPS: &[&str] = autolog_domain::reference::CBV_BIZ_STEPS;

/// CBV dispositions (schema `disposition` enum).
pub const DISPOSITIONS: &[&str] = &[
    "active",
    "container_closed",
    "damaged",
    "destroyed",
    "dispensed",
    "disposed",
    "encoded",
    "expired",
    "in_progress",
    "in_transit",
    "inactive",
    "no_pedigree_match",
    "non_sellable_other",
    "partially_dispensed",
    "recalled",
    "reserved",
    "retail_sold",
    "returned",
    "sellable_accessible",
    "sellable_not_accessible",
    "stolen",
    "unknown",
    "available",
    "completeness_verified",
    "completeness_inferred",
    "conformant",
    "container_open",
    "mismatch_instance",
    "mismatch_class",
    "mismatch_quantity",
    "needs_replacement",
    "non_conformant",
    "unavailable",
];

/// CBV business transaction types (schema `bizTransaction-type` enum).
pub const BIZ_TRANSACTION_TYPES: &[&str] = &[
    "bol",
    "cert",
    "desadv",
    "inv",
    "pedigree",
    "po",
    "poc",
    "prodorder",
    "recadv",
    "rma",
    "testprd",
    "testres",
    "upevt",
];

/// CBV source/destination types (schema `source-dest-type` enum).
pub const SOURCE_DEST_TYPES: &[&str] = &["owning_party", "possessing_party", "location"];

/// CBV error reasons (schema `error-reason` enum).
pub const ERROR_REASONS: &[&str] = &["did_not_occur", "incorrect_data"];

/// CBV sensor components (schema `component` enum).
pub const COMPONENTS: &[&str] = &[
    "x",
    "y",
    "z",
    "axial_distance",
    "azimuth",
    "height",
    "spherical_radius",
    "polar_angle",
    "elevation_angle",
    "easting",
    "northing",
    "latitude",
    "longitude",
    "altitude",
];

/// GS1 sensor alert types (schema `sensorAlertType` enum).
pub const SENSOR_ALERT_TYPES: &[&str] = &["ALARM_CONDITION", "ERROR_CONDITION"];

/// GS1 measurement types (schema `measurementType` enum).
pub const MEASUREMENT_TYPES: &[&str] = &[
    "AbsoluteHumidity",
    "AbsorbedDose",
    "AbsorbedDoseRate",
    "Acceleration",
    "Radioactivity",
    "Altitude",
    "AmountOfSubstance",
    "AmountOfSubstancePerUnitVolume",
    "Angle",
    "AngularAcceleration",
    "AngularMomentum",
    "AngularVelocity",
    "Area",
    "Capacitance",
    "Conductance",
    "Conductivity",
    "Count",
    "Density",
    "Dimensionless",
    "DoseEquivalent",
    "DoseEquivalentRate",
    "DynamicViscosity",
    "ElectricCharge",
    "ElectricCurrent",
    "ElectricCurrentDensity",
    "ElectricFieldStrength",
    "Energy",
    "Exposure",
    "Force",
    "Frequency",
    "Illuminance",
    "Inductance",
    "Irradiance",
    "KinematicViscosity",
    "Length",
    "LinearMomentum",
    "Luminance",
    "LuminousFlux",
    "LuminousIntensity",
    "MagneticFlux",
    "MagneticFluxDensity",
    "MagneticVectorPotential",
    "Mass",
    "MassConcentration",
    "MassFlowRate",
    "MassPerAreaTime",
    "MemoryCapacity",
    "MolalityOfSolute",
    "MolarEnergy",
    "MolarMass",
    "MolarVolume",
    "Power",
    "Pressure",
    "RadiantFlux",
    "RadiantIntensity",
    "RelativeHumidity",
    "Resistance",
    "Resistivity",
    "SolidAngle",
    "SpecificVolume",
    "Speed",
    "SurfaceDensity",
    "SurfaceTension",
    "Temperature",
    "Time",
    "Torque",
    "Voltage",
    "Volume",
    "VolumeFlowRate",
    "VolumeFraction",
    "VolumetricFlux",
    "Wavenumber",
];

/// One CBV/GS1 vocabulary: its bare words, the base its bare words expand to, and the
/// CBV 1.x URN prefix that names the same terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocabulary {
    BizStep,
    Disposition,
    BizTransactionType,
    SourceDestType,
    ErrorReason,
    Component,
    MeasurementType,
    SensorAlertType,
}

impl Vocabulary {
    /// The standard bare words of this vocabulary.
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Vocabulary::BizStep => BIZ_STEPS,
            Vocabulary::Disposition => DISPOSITIONS,
            Vocabulary::BizTransactionType => BIZ_TRANSACTION_TYPES,
            Vocabulary::SourceDestType => SOURCE_DEST_TYPES,
            Vocabulary::ErrorReason => ERROR_REASONS,
            Vocabulary::Component => COMPONENTS,
            Vocabulary::MeasurementType => MEASUREMENT_TYPES,
            Vocabulary::SensorAlertType => SENSOR_ALERT_TYPES,
        }
    }

    /// What a bare word is prefixed with (the JSON-LD `@vocab` of the EPCIS context).
    pub fn base(self) -> &'static str {
        match self {
            Vocabulary::BizStep => "https://ref.gs1.org/cbv/BizStep-",
            Vocabulary::Disposition => "https://ref.gs1.org/cbv/Disp-",
            Vocabulary::BizTransactionType => "https://ref.gs1.org/cbv/BTT-",
            Vocabulary::SourceDestType => "https://ref.gs1.org/cbv/SDT-",
            Vocabulary::ErrorReason => "https://ref.gs1.org/cbv/ER-",
            Vocabulary::Component => "https://ref.gs1.org/cbv/Comp-",
            Vocabulary::MeasurementType | Vocabulary::SensorAlertType => GS1_VOC_BASE,
        }
    }

    /// Whether a bare word is one of the standard words.
    pub fn is_standard_word(self, word: &str) -> bool {
        self.words().contains(&word)
    }

    /// Expands a value to its full URI: a bare word gets the vocabulary base, a `cbv:` or
    /// `gs1:` compact URI its namespace, a CBV 1.x URN its web-vocabulary form; any other
    /// URI is returned unchanged.
    pub fn expand(self, value: &str) -> String {
        if !value.contains(':') {
            return format!("{}{value}", self.base());
        }
        if let Some(rest) = value.strip_prefix("cbv:") {
            return format!("{CBV_BASE}{rest}");
        }
        if let Some(rest) = value.strip_prefix("gs1:") {
            return format!("{GS1_VOC_BASE}{rest}");
        }
        web_vocabulary(value)
    }
}

/// CBV 1.x URNs (`urn:epcglobal:cbv:bizstep:shipping`) in their CBV 2.0 web form
/// (`https://ref.gs1.org/cbv/BizStep-shipping`); any other text unchanged.
pub fn web_vocabulary(value: &str) -> String {
    const URNS: &[(&str, &str)] = &[
        (
            "urn:epcglobal:cbv:bizstep:",
            "https://ref.gs1.org/cbv/BizStep-",
        ),
        ("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-"),
        ("urn:epcglobal:cbv:btt:", "https://ref.gs1.org/cbv/BTT-"),
        ("urn:epcglobal:cbv:sdt:", "https://ref.gs1.org/cbv/SDT-"),
        ("urn:epcglobal:cbv:er:", "https://ref.gs1.org/cbv/ER-"),
    ];
    for (urn, web) in URNS {
        if let Some(rest) = value.strip_prefix(urn) {
            return format!("{web}{rest}");
        }
    }
    value.to_string()
}

/// `shipping` -> `https://ref.gs1.org/cbv/BizStep-shipping` (URIs are kept; CBV 1.x URNs converted).
pub fn expand_biz_step(value: &str) -> String {
    Vocabulary::BizStep.expand(value)
}

/// `in_transit` -> `https://ref.gs1.org/cbv/Disp-in_transit`.
pub fn expand_disposition(value: &str) -> String {
    Vocabulary::Disposition.expand(value)
}

/// `po` -> `https://ref.gs1.org/cbv/BTT-po`.
pub fn expand_biz_transaction_type(value: &str) -> String {
    Vocabulary::BizTransactionType.expand(value)
}

/// `owning_party` -> `https://ref.gs1.org/cbv/SDT-owning_party`.
pub fn expand_source_dest_type(value: &str) -> String {
    Vocabulary::SourceDestType.expand(value)
}

/// `incorrect_data` -> `https://ref.gs1.org/cbv/ER-incorrect_data`.
pub fn expand_error_reason(value: &str) -> String {
    Vocabulary::ErrorReason.expand(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_words_expand_to_the_cbv_web_vocabulary() {
        assert_eq!(
            expand_biz_step("shipping"),
            "https://ref.gs1.org/cbv/BizStep-shipping"
        );
        assert_eq!(
            expand_disposition("in_transit"),
            "https://ref.gs1.org/cbv/Disp-in_transit"
        );
        assert_eq!(
            expand_biz_transaction_type("po"),
            "https://ref.gs1.org/cbv/BTT-po"
        );
        assert_eq!(
            expand_source_dest_type("location"),
            "https://ref.gs1.org/cbv/SDT-location"
        );
        assert_eq!(
            Vocabulary::MeasurementType.expand("Temperature"),
            "https://ref.gs1.org/voc/Temperature"
        );
    }

    #[test]
    fn urns_and_compact_uris_expand_too_and_other_uris_stay() {
        assert_eq!(
            expand_biz_step("urn:epcglobal:cbv:bizstep:receiving"),
            "https://ref.gs1.org/cbv/BizStep-receiving"
        );
        assert_eq!(
            expand_disposition("cbv:Disp-active"),
            "https://ref.gs1.org/cbv/Disp-active"
        );
        assert_eq!(
            expand_biz_step("https://example.com/steps/thaw"),
            "https://example.com/steps/thaw"
        );
    }
}
