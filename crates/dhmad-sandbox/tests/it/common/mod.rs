//! Shared test harness: an in-process sandbox, a `dhmad::Client`, a control-API helper and a
//! webhook receiver that verifies signatures.

pub mod receiver;

use std::time::Duration;

use dhmad::{
    CheckoutAction, Client, CreateEscrow, CreateSession, EscrowMode, FulfillmentPolicy,
    FulfillmentPolicyType, RetryPolicy,
};
use dhmad_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use rust_decimal::Decimal;
use serde_json::{json, Value};

pub use receiver::Receiver;

pub const BUYER: &str = "buyer@example.com";
pub const CALLBACK: &str = "http://localhost:3000/checkout/callback";

/// A quick escrow of `amount` TND for [`BUYER`], delivered in three days.
pub fn req(amount: i64) -> CreateEscrow {
    CreateEscrow::new("Thing", Decimal::from(amount), BUYER)
        .mode(EscrowMode::Quick)
        .estimated_delivery_days(3)
}

/// A proof-required fulfilment policy with `upload` hours to upload the proof.
pub fn policy(upload: u32) -> FulfillmentPolicy {
    FulfillmentPolicy {
        policy_type: FulfillmentPolicyType::PurchaseProofRequired,
        proof_upload_deadline_hours: Some(upload),
        buyer_review_deadline_hours: None,
        allowed_proof_types: None,
    }
}

pub struct Env {
    pub sandbox: SandboxHandle,
    pub client: Client,
    pub http: reqwest::Client,
    pub hooks: Receiver,
}

impl Env {
    pub async fn start() -> Self {
        Self::with(SandboxConfig::for_tests()).await
    }

    pub async fn with(mut config: SandboxConfig) -> Self {
        let hooks = Receiver::start(&config.webhook_secret).await;
        config.webhook_urls = vec![hooks.url()];
        let sandbox = Sandbox::start(config).await.expect("sandbox starts");
        let client = Client::builder(sandbox.api_key())
            .base_url(sandbox.api_base())
            .retry_policy(RetryPolicy::none())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            sandbox,
            client,
            http,
            hooks,
        }
    }

    pub fn seller(&self) -> String {
        self.sandbox.seller_email().to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base_url())
    }

    /// POST to the control API; returns (status, JSON body).
    pub async fn control(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The sandbox's delivery log once it holds `n` attempts: an attempt is logged once its
    /// answer is read, after the receiver has it.
    pub async fn deliveries(&self, n: usize) -> Vec<Value> {
        // Up to 30 s, as every other wait of the suites: retries and timeouts on a loaded
        // machine.
        for _ in 0..1500 {
            let v = self.get_json("/sandbox/deliveries").await;
            if v.as_array().unwrap().len() >= n {
                return v.as_array().unwrap().clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("expected {n} logged attempts");
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// GET an `/api/v1` path with the key; returns the raw JSON (fields the client drops too).
    pub async fn api_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.sandbox.api_base()))
            .bearer_auth(self.sandbox.api_key())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn create(&self, req: CreateEscrow) -> String {
        self.client
            .create_escrow(&req)
            .await
            .expect("escrow created")
            .escrow
            .id
    }

    pub async fn instant(&self, amount: i64) -> String {
        self.create(
            CreateEscrow::new("AI credits", Decimal::from(amount), BUYER).mode(EscrowMode::Instant),
        )
        .await
    }

    pub async fn quick(&self) -> String {
        self.create(
            CreateEscrow::new("Used bike", Decimal::from(420), BUYER)
                .mode(EscrowMode::Quick)
                .estimated_delivery_days(4),
        )
        .await
    }

    pub async fn standard(&self) -> String {
        self.create(
            CreateEscrow::new("Logo pack", Decimal::from(300), BUYER)
                .estimated_delivery_days(5)
                .contract_terms("Deliver three logo drafts."),
        )
        .await
    }

    pub async fn session(&self, escrow: &str, action: CheckoutAction, target: &str) -> String {
        self.session_to(escrow, action, target, CALLBACK).await
    }

    /// A session that sends the user back to `redirect_url`.
    pub async fn session_to(
        &self,
        escrow: &str,
        action: CheckoutAction,
        target: &str,
        redirect_url: &str,
    ) -> String {
        self.client
            .create_session(escrow, &CreateSession::new(action, target, redirect_url))
            .await
            .expect("session created")
            .session_id
    }

    /// Creates a session and completes it through the control API.
    pub async fn act(&self, escrow: &str, action: CheckoutAction, target: &str) -> Value {
        self.act_with(escrow, action, target, json!({})).await
    }

    pub async fn act_with(
        &self,
        escrow: &str,
        action: CheckoutAction,
        target: &str,
        body: Value,
    ) -> Value {
        let s = self.session(escrow, action, target).await;
        let (status, v) = self
            .control(&format!("/sandbox/sessions/{s}/complete"), body)
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    pub async fn pay(&self, escrow: &str) {
        self.act(escrow, CheckoutAction::AcceptPay, BUYER).await;
    }

    pub async fn status(&self, escrow: &str) -> String {
        self.client
            .get_escrow(escrow)
            .await
            .unwrap()
            .status
            .to_string()
    }
}

/// The `error.code` of a client error.
pub fn code(e: &dhmad::Error) -> String {
    e.code().map(|c| c.to_string()).unwrap_or_default()
}
