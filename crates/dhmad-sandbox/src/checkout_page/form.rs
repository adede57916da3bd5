//! The page's POST body: multipart (with files) or urlencoded.

use std::collections::HashMap;

use axum::extract::{FromRequest, Multipart, Request};
use axum::Form;

use crate::lifecycle::proof_ops::Upload;

/// What the form sent.
#[derive(Debug, Default)]
pub struct PageForm {
    pub fields: HashMap<String, String>,
    pub file: Option<Upload>,
}

impl PageForm {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.fields
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub async fn read(req: Request) -> Result<Self, String> {
        let multipart = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        if !multipart {
            let Form(fields) = Form::<HashMap<String, String>>::from_request(req, &())
                .await
                .map_err(|e| e.to_string())?;
            return Ok(Self { fields, file: None });
        }
        let mut mp = Multipart::from_request(req, &())
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Self::default();
        while let Some(field) = mp.next_field().await.map_err(|e| e.to_string())? {
            let name = field.name().unwrap_or_default().to_owned();
            match field.file_name().map(str::to_owned) {
                Some(file_name) => {
                    let mime = field
                        .content_type()
                        .unwrap_or("application/octet-stream")
                        .to_owned();
                    let bytes = field.bytes().await.map_err(|e| e.to_string())?;
                    if !file_name.is_empty() && !bytes.is_empty() {
                        out.file = Some(Upload {
                            name: file_name,
                            mime,
                            bytes: bytes.to_vec(),
                        });
                    }
                }
                None => {
                    let text = field.text().await.map_err(|e| e.to_string())?;
                    out.fields.insert(name, text);
                }
            }
        }
        Ok(out)
    }
}
