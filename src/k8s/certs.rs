//! Certificates for the webhook in clusters without cert-manager (`webhook certs`): a CA, and
//! a serving certificate it signs for the webhook's Service names. The API server checks the
//! serving certificate against the CA given as the webhook configuration's caBundle.

use chrono::Datelike;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};

/// The CA lives ten years, the serving certificate one (re-issue and patch the caBundle then).
const CA_DAYS: u64 = 3650;
const SERVING_DAYS: u64 = 365;

/// PEM texts, named as a `kubernetes.io/tls` Secret names them.
#[derive(Debug)]
pub struct Issued {
    pub ca_crt: String,
    pub tls_crt: String,
    pub tls_key: String,
}

impl Issued {
    /// The CA as the webhook configuration's `caBundle` takes it (base64 of the PEM).
    pub fn ca_bundle(&self) -> String {
        base64_simd::STANDARD.encode_to_string(self.ca_crt.as_bytes())
    }
}

/// The DNS names the API server may use for `service` in `namespace`.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

fn valid_for(params: &mut CertificateParams, days: u64) {
    let date = |d: chrono::NaiveDate| date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    let today = chrono::Utc::now().date_naive();
    params.not_before = date(today - chrono::Days::new(1));
    params.not_after = date(today + chrono::Days::new(days));
}

/// A new CA and a serving certificate for `service.namespace.svc`.
pub fn issue(service: &str, namespace: &str) -> Result<Issued, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("gophercap webhook CA ({namespace})"),
    );
    valid_for(&mut ca, CA_DAYS);
    let ca_crt = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(service_names(service, namespace))?;
    serving
        .distinguished_name
        .push(DnType::CommonName, format!("{service}.{namespace}.svc"));
    serving.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    valid_for(&mut serving, SERVING_DAYS);
    let tls_crt = serving.signed_by(&key, &issuer)?.pem();
    Ok(Issued {
        ca_crt,
        tls_crt,
        tls_key: key.serialize_pem(),
    })
}
