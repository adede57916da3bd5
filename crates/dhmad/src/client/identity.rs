//! The identity-verification endpoints (pre-account KYC, `docs/dhmad-api.md` §3.14).

use reqwest::Method;

use super::transport::Retry;
use super::{Client, NO_BODY};
use crate::error::Error;
use crate::types::*;

impl Client {
    /// `POST /identity-verifications`: DHMAD e-mails the person a verification link (never
    /// returned; the sandbox approves at once and sends no e-mail). Needs no associated user.
    /// Resent only after a 429; sending it again is safe anyway: while a record for the e-mail
    /// is open, DHMAD answers it (200) instead of creating another.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(client: dhmad::Client) -> Result<(), dhmad::Error> {
    /// use dhmad::{CreateIdentityVerification, Error};
    ///
    /// let req = CreateIdentityVerification::new("seller@example.tn").external_user_id("seller-42");
    /// match client.create_identity_verification(&req).await {
    ///     Ok(v) if !v.verification.verification_email_sent => println!("no e-mail yet: call again"),
    ///     Ok(v) => println!("verification {} is {}", v.verification.id, v.verification.kyc_status),
    ///     // A DHMAD user with this e-mail is already verified: nothing to do.
    ///     Err(Error::Conflict(e)) if e.body["user_exists"] == true => println!("already verified"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_identity_verification(
        &self,
        req: &CreateIdentityVerification,
    ) -> Result<CreatedIdentityVerification, Error> {
        self.call(
            Method::POST,
            &["identity-verifications"],
            Some(req),
            Retry::No,
        )
        .await
    }

    /// `GET /identity-verifications/:id` (records created with this key only). Retried.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(client: dhmad::Client) -> Result<(), dhmad::Error> {
    /// use dhmad::KycStatus;
    ///
    /// let v = client.get_identity_verification("66aa00000000000000000042").await?;
    /// if v.kyc_status == KycStatus::Approved {
    ///     println!("{} is verified", v.email);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_identity_verification(&self, id: &str) -> Result<IdentityVerification, Error> {
        let env: IdentityVerificationEnvelope = self
            .call(
                Method::GET,
                &["identity-verifications", id],
                NO_BODY,
                Retry::Yes,
            )
            .await?;
        Ok(env.verification)
    }

    /// `GET /identity-verifications?email=…`: this key's records for the e-mail, newest first,
    /// at most 20. Retried.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(client: dhmad::Client) -> Result<(), dhmad::Error> {
    /// let list = client.list_identity_verifications("seller@example.tn").await?;
    /// if let Some(latest) = list.verifications.first() {
    ///     println!("latest: {} ({})", latest.id, latest.kyc_status);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_identity_verifications(
        &self,
        email: &str,
    ) -> Result<IdentityVerificationList, Error> {
        let qs = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("email", email)
            .finish();
        self.request(
            Method::GET,
            &["identity-verifications"],
            Some(&qs),
            NO_BODY,
            Retry::Yes,
        )
        .await
    }
}
