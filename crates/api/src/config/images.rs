//! Image variants: the limits their sources must keep, the presets, and how many are made at once.

use std::collections::HashMap;

use stowage_application::use_cases::{ImageLimits, UploadPolicy};
use stowage_domain::image::variant::{DEFAULT_PRESETS, MAX_OUTPUT_SIDE, Presets};

use super::ConfigError;
use super::values::{Vars, invalid};

/// The images section.
#[derive(Clone, Debug)]
pub struct ImagesConfig {
    /// `IMAGE_MAX_SOURCE_PIXELS`, `IMAGE_MAX_SOURCE_BYTES`, `IMAGE_MAX_OUTPUT_PX`.
    pub limits: ImageLimits,
    /// `IMAGE_PRESETS`.
    pub presets: Presets,
    /// `IMAGE_CONCURRENCY`: variants made at once (default: the number of cores).
    pub concurrency: usize,
}

/// The images section.
pub(super) fn images(vars: Vars<'_>) -> Result<ImagesConfig, ConfigError> {
    let defaults = ImageLimits::default();
    let positive = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
        let value: u64 = vars.parse_or(name, &default.to_string())?;
        if value == 0 {
            return Err(invalid(name, "must be greater than 0".to_owned()));
        }
        Ok(value)
    };
    let max_output_px = positive("IMAGE_MAX_OUTPUT_PX", u64::from(defaults.max_output_px))?;
    let max_output_px = u32::try_from(max_output_px)
        .ok()
        .filter(|&px| px <= MAX_OUTPUT_SIDE)
        .ok_or_else(|| {
            invalid(
                "IMAGE_MAX_OUTPUT_PX",
                format!("must be at most {MAX_OUTPUT_SIDE}"),
            )
        })?;
    let limits = ImageLimits {
        max_source_pixels: positive("IMAGE_MAX_SOURCE_PIXELS", defaults.max_source_pixels)?,
        max_source_bytes: positive("IMAGE_MAX_SOURCE_BYTES", defaults.max_source_bytes)?,
        max_output_px,
    };
    let presets = Presets::parse(
        vars.get("IMAGE_PRESETS").unwrap_or(DEFAULT_PRESETS),
        max_output_px,
    )
    .map_err(|e| invalid("IMAGE_PRESETS", e.0))?;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let concurrency = positive("IMAGE_CONCURRENCY", cores as u64)?;
    let concurrency = usize::try_from(concurrency)
        .ok()
        .filter(|&n| n <= 1024)
        .ok_or_else(|| invalid("IMAGE_CONCURRENCY", "must be at most 1024".to_owned()))?;
    Ok(ImagesConfig {
        limits,
        presets,
        concurrency,
    })
}

/// The types variants are made of: a policy that makes variants accepts no other.
const VARIANT_SOURCES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Checks that every policy's `variants` are presets, and that a policy making variants only
/// accepts images they can be made of (else every other upload under it would fail).
pub(super) fn check_policies(
    policies: &HashMap<String, UploadPolicy>,
    images: &ImagesConfig,
) -> Result<(), ConfigError> {
    let presets = &images.presets;
    let mut names: Vec<&String> = policies.keys().collect();
    names.sort();
    for name in names {
        let policy = &policies[name];
        // The built-in avatar is reported under the variable that can fix it.
        let variable = if name == "avatar" && !policy_is_configured(policies, name) {
            "IMAGE_PRESETS"
        } else {
            "UPLOAD_POLICIES"
        };
        for preset in &policy.variants {
            if presets.get(preset).is_none() {
                return Err(invalid(
                    variable,
                    format!(
                        "policy '{name}' makes variant '{preset}', which IMAGE_PRESETS does not name"
                    ),
                ));
            }
        }
        if !policy.variants.is_empty()
            && let Some(other) = policy
                .allowed_types
                .iter()
                .find(|t| !VARIANT_SOURCES.contains(&t.as_str()))
        {
            return Err(invalid(
                "UPLOAD_POLICIES",
                format!(
                    "policy '{name}' makes variants, so its types must be among {}, not {other}",
                    VARIANT_SOURCES.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Whether `name` is the built-in policy as it ships.
fn policy_is_configured(policies: &HashMap<String, UploadPolicy>, name: &str) -> bool {
    policies.get(name) != Some(&UploadPolicy::avatar())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_the_contract_s() {
        let map = vars(&[]);
        let config = images(Vars::new(&map, false)).unwrap();
        assert_eq!(config.limits, ImageLimits::default());
        assert_eq!(
            config.presets.to_string(),
            "large=300x300,medium=150x150,small=32x32"
        );
        assert!(config.concurrency >= 1);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("IMAGE_MAX_OUTPUT_PX", "0"),
            ("IMAGE_MAX_OUTPUT_PX", "16384"),
            ("IMAGE_MAX_SOURCE_PIXELS", "lots"),
            ("IMAGE_PRESETS", "small=0x0"),
            ("IMAGE_CONCURRENCY", "0"),
        ] {
            let map = vars(&[(name, value)]);
            let err = images(Vars::new(&map, false)).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn policies_may_only_name_presets_and_image_types() {
        let map = vars(&[]);
        let mut config = images(Vars::new(&map, false)).unwrap();
        let avatar = HashMap::from([("avatar".to_owned(), UploadPolicy::avatar())]);
        check_policies(&avatar, &config).unwrap();

        let mut pdf = UploadPolicy::avatar();
        pdf.allowed_types.push("application/pdf".into());
        let err = check_policies(&HashMap::from([("doc".to_owned(), pdf)]), &config).unwrap_err();
        assert!(err.to_string().contains("application/pdf"), "{err}");

        config.presets = Presets::parse("thumb=64x64", 2500).unwrap();
        let err = check_policies(&avatar, &config).unwrap_err();
        assert!(err.to_string().contains("IMAGE_PRESETS"), "{err}");
    }
}
