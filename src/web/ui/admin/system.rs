//! The system page (owner only): the box's state and its certificate.

use super::*;

/// The owner check of the system pages, asked of the core.
fn owner_only(current: &Current) -> Result<(), Box<Response>> {
    match Actor::session(&current.session).may_administer_box() {
        Ok(()) => Ok(()),
        Err(_) => Err(Box::new(forbidden(
            current,
            "it is for the system administrator",
        ))),
    }
}

fn duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    if d > 0 {
        format!("{d} d {h} h {m} min")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else {
        format!("{m} min")
    }
}

/// A count of the system page in words ("TOTP enrolments").
fn count_label(key: &str) -> String {
    match key {
        "totp_enrolments" => "TOTP enrolments".into(),
        other => sentence(&other.replace('_', " "))
            .trim_end_matches('.')
            .to_string(),
    }
}

/// `GET /admin/system`
pub(crate) async fn system(State(web): State<Arc<Web>>, signed: Signed) -> Response {
    let current = &signed.current;
    if let Err(r) = owner_only(current) {
        return *r;
    }
    let message = flash(&web, current);
    let w = web.clone();
    let actor = Actor::session(&current.session);
    let view = match blocking(move || crate::web::api::system_view(&w, &actor)).await {
        Ok(v) => v,
        Err(e) => return failed_page(current, Nav::System, "System", &e),
    };
    let csrf = current.csrf.as_str();
    let cert = &view.certificate;
    let body = html! {
        div.cards {
            section.card aria-labelledby="box-h" {
                h2 #box-h { "This box" }
                dl.facts {
                    dt { "Version" } dd { "Coffer " (view.version) }
                    dt { "Running for" } dd { (duration(view.uptime)) " (since " (when(view.started_at)) ")" }
                    dt { "Listening" } dd { @for l in &view.listening { span.chip { (l) } " " } }
                    dt { "Sessions" } dd { (view.sessions) " signed in (web and API)" }
                    @for (k, v) in &view.counts {
                        dt { (count_label(k)) } dd { (v) }
                    }
                }
            }
            section.card aria-labelledby="disk-h" {
                h2 #disk-h { "Storage" }
                @if let Some(s) = &view.storage {
                    @let used = s.total_bytes.saturating_sub(s.available_bytes);
                    @let pct = used.saturating_mul(100).checked_div(s.total_bytes).unwrap_or(0);
                    p { (bytes(used)) " used of " (bytes(s.total_bytes)) "; " (bytes(s.available_bytes)) " free." }
                    meter min="0" max="100" low="80" high="90" optimum="0" value=(pct) aria-label="Disk use" { (pct) "%" }
                } @else {
                    p.help { "The storage use could not be read." }
                }
            }
            section.card aria-labelledby="seal-h" {
                h2 #seal-h { "Secret protection" }
                @if view.tpm {
                    p { span.badge.good { "TPM" } " The TPM protects the key that encrypts the TOTP seeds." }
                } @else {
                    p { span.badge.warn { "no TPM" } " The key that encrypts the TOTP seeds is in a key file readable only by Coffer; a TPM would protect it better." }
                }
                dl.facts {
                    dt { "Backend" } dd { (view.seal_backend) }
                    dt { "Detail" } dd { code { (view.seal_detail) } }
                }
            }
            section.card aria-labelledby="con-h" {
                h2 #con-h { "Serial console" }
                p { (prose(&view.console)) }
            }
        }
        section.card aria-labelledby="tls-h" {
            h2 #tls-h { "TLS certificate" }
            dl.facts {
                dt { "SHA-256 fingerprint" } dd { code.fingerprint { (cert.fingerprint) } }
                dt { "Subject" } dd { (cert.subject) }
                dt { "Issuer" } dd { (cert.issuer) @if cert.self_signed { " " span.badge { "self-signed" } } }
                dt { "Names" } dd { (cert.names.join(", ")) }
                dt { "Valid" } dd {
                    (when(u64::try_from(cert.not_before).unwrap_or(0))) " to "
                    (when(u64::try_from(cert.not_after).unwrap_or(0)))
                }
            }
            details {
                summary { "Replace with your own certificate" }
                form method="post" action="/admin/system/certificate" {
                    (csrf_field(csrf))
                    div.field {
                        label for="certificate" { "Certificate chain (PEM)" }
                        textarea #certificate name="certificate" rows="6" required spellcheck="false" placeholder="-----BEGIN CERTIFICATE-----" {}
                        input type="file" accept=".pem,.crt,.cer" data-fill="certificate" aria-label="Read the certificate from a file";
                    }
                    div.field {
                        label for="private_key" { "Private key (PEM)" }
                        textarea #private_key name="private_key" rows="6" required spellcheck="false" placeholder="-----BEGIN PRIVATE KEY-----" {}
                        input type="file" accept=".pem,.key" data-fill="private_key" aria-label="Read the private key from a file";
                    }
                    p.help { "New connections use it at once; the key is stored readable only by Coffer." }
                    button.primary type="submit" { "Upload certificate" }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        shell(current, Nav::System, "System", message.as_deref(), body),
    )
}

/// `POST /admin/system/certificate`
pub(crate) async fn certificate(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    if let Err(r) = owner_only(&current) {
        return *r;
    }
    let cert = posted.fields.get("certificate").as_bytes().to_vec();
    let key = zeroize::Zeroizing::new(posted.fields.get("private_key").as_bytes().to_vec());
    let certs = web.certs.clone();
    let replaced = tokio::task::spawn_blocking(move || certs.replace(&cert, &key)).await;
    match replaced {
        Ok(Ok(info)) => {
            web.auth
                .certificate_changed(&Actor::session(&current.session), &info.fingerprint);
            web.sessions.set_flash(
                &current.token,
                format!("Certificate installed; fingerprint {}.", info.fingerprint),
            );
            see_other("/admin/system")
        }
        Ok(Err(e)) => {
            let text = match e {
                crate::web::tls::TlsError::Io { .. } | crate::web::tls::TlsError::Generate(_) => {
                    tracing::error!(error = %e, "storing an uploaded certificate failed");
                    "The certificate could not be stored; the administrator can find why in the log."
                        .to_string()
                }
                e => sentence(&e.to_string()),
            };
            web.sessions.set_flash(&current.token, format!("!{text}"));
            see_other("/admin/system")
        }
        Err(_) => see_other("/admin/system"),
    }
}
