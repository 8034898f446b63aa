//! The component schemas of the OpenAPI document ([`super::document`]): every request and
//! answer of the public router, built from a few shared pieces (sats as strings or integers,
//! the LSPS1 params, payments and orders).

use serde_json::{json, Map, Value};

use crate::http::public::kaleidoswap;

fn sats_string() -> Value {
    json!({ "type": "string", "pattern": "^[0-9]+$", "description": "sats, as a decimal string" })
}

pub(super) fn sats_integer() -> Value {
    json!({ "type": "integer", "minimum": 0, "description": "sats" })
}

/// An object schema; `required` is left out when empty, as OpenAPI 3.0 requires.
pub(super) fn object(required: &[&str], properties: Value) -> Value {
    let mut schema = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

pub(super) fn nullable(mut schema: Value) -> Value {
    schema["nullable"] = json!(true);
    schema
}

/// A field that may only be null (or left out). OpenAPI 3.0 has no null type: `nullable` adds
/// null to the `type` beside it (and only when there is one), and the enum then allows nothing
/// else. The type names what the field would hold were it sold (and what a client would send).
fn only_null(kind: &str, description: &str) -> Value {
    json!({ "type": kind, "nullable": true, "enum": [null], "description": description })
}

/// A request body: as [`object`], and any field it does not list must be null (the guard
/// treats an unknown null field as absent and refuses any other with `data.unrecognized`).
pub(super) fn request(required: &[&str], properties: Value) -> Value {
    let mut schema = object(required, properties);
    schema["additionalProperties"] = only_null(
        "string",
        "unknown fields are refused (-32602, data.unrecognized) unless null",
    );
    schema
}

/// A node id: a compressed secp256k1 public key in hex.
pub(super) fn node_id() -> Value {
    json!({
        "type": "string",
        "pattern": NODE_ID_PATTERN,
        "description": "compressed secp256k1 node public key, hex",
    })
}

pub const NODE_ID_PATTERN: &str = "^0[23][0-9a-fA-F]{64}$";

/// A short channel id as LSPS0 writes it.
pub const SCID_PATTERN: &str = "^[0-9]+x[0-9]+x[0-9]+$";

pub(super) fn schemas() -> Value {
    let string = json!({ "type": "string" });
    let integer = json!({ "type": "integer", "minimum": 0 });
    // The guard's ranges: u16 confirmation counts, a lease of 1 to u32::MAX blocks.
    let confirmations = json!({ "type": "integer", "minimum": 0, "maximum": u16::MAX });
    let expiry_blocks = json!({ "type": "integer", "minimum": 1, "maximum": u32::MAX });
    let boolean = json!({ "type": "boolean" });
    let time = json!({ "type": "string", "format": "date-time" });
    let options = |sats: fn() -> Value| {
        object(
            &[
                "min_required_channel_confirmations",
                "min_funding_confirms_within_blocks",
                "supports_zero_channel_reserve",
                "max_channel_expiry_blocks",
                "min_initial_client_balance_sat",
                "max_initial_client_balance_sat",
                "min_initial_lsp_balance_sat",
                "max_initial_lsp_balance_sat",
                "min_channel_balance_sat",
                "max_channel_balance_sat",
            ],
            json!({
                "min_required_channel_confirmations": integer,
                "min_funding_confirms_within_blocks": integer,
                "supports_zero_channel_reserve": boolean,
                "max_channel_expiry_blocks": integer,
                "min_initial_client_balance_sat": sats(),
                "max_initial_client_balance_sat": sats(),
                "min_initial_lsp_balance_sat": sats(),
                "max_initial_lsp_balance_sat": sats(),
                "min_channel_balance_sat": sats(),
                "max_channel_balance_sat": sats(),
            }),
        )
    };
    let params_required = [
        "lsp_balance_sat",
        "client_balance_sat",
        "required_channel_confirmations",
        "funding_confirms_within_blocks",
        "channel_expiry_blocks",
        "announce_channel",
    ];
    let params = |sats: fn() -> Value| {
        json!({
            "lsp_balance_sat": sats(),
            "client_balance_sat": sats(),
            "required_channel_confirmations": confirmations,
            "funding_confirms_within_blocks": confirmations,
            "channel_expiry_blocks": expiry_blocks,
            "token": nullable(string.clone()),
            "refund_onchain_address": nullable(string.clone()),
            "announce_channel": boolean,
        })
    };
    let with = |mut base: Value, extra: Value| {
        for (name, schema) in extra.as_object().into_iter().flatten() {
            base[name] = schema.clone();
        }
        base
    };
    let payment = |sats: fn() -> Value, onchain: bool| {
        let mut properties = json!({
            "state": { "type": "string", "enum": ["EXPECT_PAYMENT", "HOLD", "PAID", "REFUNDED"] },
            "expires_at": time,
            "fee_total_sat": sats(),
            "order_total_sat": sats(),
        });
        if onchain {
            properties = with(
                properties,
                json!({
                    "address": string,
                    "min_onchain_payment_confirmations": integer,
                    "min_fee_for_0conf": integer,
                    "refund_onchain_address": nullable(string.clone()),
                }),
            );
        } else {
            properties["invoice"] = string.clone();
        }
        object(
            &["state", "expires_at", "fee_total_sat", "order_total_sat"],
            properties,
        )
    };
    let order = |sats: fn() -> Value| {
        let mut properties = with(
            params(sats),
            json!({
                "order_id": string,
                "created_at": time,
                "order_state": { "type": "string", "enum": ["CREATED", "COMPLETED", "FAILED"] },
                "payment": object(&[], json!({
                    "bolt11": payment(sats, false),
                    "onchain": payment(sats, true),
                })),
                "channel": nullable(object(
                    &["funded_at", "funding_outpoint", "expires_at"],
                    json!({ "funded_at": time, "funding_outpoint": string, "expires_at": time }),
                )),
            }),
        );
        properties["token"] = nullable(string.clone());
        properties
    };
    let order_required = [
        &params_required[..],
        &[
            "order_id",
            "created_at",
            "order_state",
            "payment",
            "channel",
        ],
    ]
    .concat();
    let price = {
        let names = [
            "base_fee_sat",
            "proportional_fee_sat",
            "lease_fee_sat",
            "onchain_fee_sat",
            "refund_reserve_sat",
            "discount_sat",
            "fee_total_sat",
            "order_total_sat",
        ];
        let properties: Map<String, Value> = names
            .iter()
            .map(|name| (name.to_string(), sats_string()))
            .collect();
        object(&names, Value::Object(properties))
    };
    let no_asset = |kind| only_null(kind, "RGB asset channels are not sold: null or left out");
    let asset_fields = json!({
        "asset_id": no_asset("string"),
        "lsp_asset_amount": no_asset("integer"),
        "client_asset_amount": no_asset("integer"),
        "rfq_id": no_asset("string"),
    });
    let mut kaleidoswap_options = options(sats_integer);
    kaleidoswap_options["properties"] = with(
        kaleidoswap_options["properties"].take(),
        json!({
            "min_onchain_payment_confirmations": nullable(integer.clone()),
            "min_onchain_payment_size_sat": nullable(sats_integer()),
        }),
    );
    let kaleidoswap_request = with(
        with(params(sats_integer), asset_fields.clone()),
        json!({
            "email": nullable(json!({
                "type": "string", "format": "email", "maxLength": kaleidoswap::MAX_EMAIL_LEN,
            })),
        }),
    );
    // Every order made in this dialect has both payment options; one made elsewhere may lack
    // the on-chain one.
    let mut kaleidoswap_order = order(sats_integer);
    kaleidoswap_order["payment"]["required"] = json!(["bolt11"]);
    let access_token = json!({
        "type": "string",
        "maxLength": 0,
        "nullable": true,
        "description": "no access tokens are issued: empty, null or left out",
    });
    let mut olympus_info = options(sats_string);
    olympus_info["properties"] = with(
        olympus_info["properties"].take(),
        json!({
            "uris": { "type": "array", "items": string, "description": "node_id@host:port" },
            "min_onchain_payment_confirmations": nullable(integer.clone()),
            "min_onchain_payment_size_sat": nullable(sats_string()),
        }),
    );
    olympus_info["required"]
        .as_array_mut()
        .expect("options list their required fields")
        .push(json!("uris"));
    let scid =
        json!({ "type": "string", "pattern": SCID_PATTERN, "description": "BLOCKxTXxOUTPUT" });
    let height = json!({ "type": "integer", "minimum": 0, "description": "a block height" });
    let extendable_properties = json!({
        "original_order": object(&["id", "service"], json!({ "id": string, "service": string })),
        "extension_order_ids": { "type": "array", "items": string },
        "short_channel_id": scid,
        "max_channel_extension_expiry_blocks": integer,
        "expiration_block": height,
    });
    let extendable_required = [
        "original_order",
        "extension_order_ids",
        "short_channel_id",
        "max_channel_extension_expiry_blocks",
        "expiration_block",
    ];
    let extendable_channel = object(&extendable_required, extendable_properties.clone());
    let extension_channel = object(
        &extendable_required,
        with(
            extendable_properties,
            json!({ "funded_at": time, "expires_at": time }),
        ),
    );
    let mut all = json!({
        "OlympusInfo": olympus_info,
        "OrderRequest": request(
            &[&params_required[..], &["public_key"]].concat(),
            with(params(sats_string), json!({ "public_key": node_id() })),
        ),
        "Order": object(&order_required, order(sats_string)),
        "KaleidoswapInfo": object(&["lsp_connection_url", "options", "assets"], json!({
            "lsp_connection_url": { "type": "string", "description": "node_id@host:port" },
            "options": kaleidoswap_options,
            "assets": {
                "type": "array",
                "items": { "type": "object" },
                "description": "RGB assets sold with channels: none",
            },
        })),
        "KaleidoswapOrderRequest": request(
            &["client_pubkey", "lsp_balance_sat", "client_balance_sat",
              "required_channel_confirmations", "funding_confirms_within_blocks",
              "channel_expiry_blocks", "refund_onchain_address"],
            with(kaleidoswap_request.clone(), json!({
                "client_pubkey": node_id(),
                "refund_onchain_address": {
                    "type": "string",
                    "minLength": 1,
                    "description": "required: every order of this dialect offers on-chain \
                                    payment, which is only taken with an address to return it to",
                },
            })),
        ),
        "KaleidoswapEstimateRequest": request(
            &["lsp_balance_sat", "client_balance_sat", "required_channel_confirmations",
              "funding_confirms_within_blocks", "channel_expiry_blocks"],
            with(kaleidoswap_request, json!({ "client_pubkey": nullable(node_id()) })),
        ),
        "KaleidoswapOrder": object(
            &[&order_required[..], &["client_pubkey"]].concat(),
            with(with(kaleidoswap_order, asset_fields), json!({
                "client_pubkey": node_id(),
                "asset_price_sat": no_asset("integer"),
                "asset_delivery_status": { "type": "string", "enum": ["NOT_REQUIRED"] },
            })),
        ),
        "KaleidoswapOrderIdRequest": request(&["order_id"], json!({
            "order_id": string,
            "access_token": access_token,
        })),
        "RateDecisionRequest": request(&["order_id", "accept_new_rate"], json!({
            "order_id": string,
            "access_token": access_token,
            "accept_new_rate": boolean,
        })),
        "RetryDeliveryRequest": request(&["order_id"], json!({ "order_id": string })),
        "RetryDelivery": object(&["status", "message"], json!({
            "status": { "type": "string", "enum": ["no_pending_delivery"] },
            "message": string,
        })),
        "FeeEstimate": object(
            &["setup_fee", "capacity_fee", "duration_fee", "total_fee", "applied_discount"],
            json!({
                "setup_fee": sats_integer(),
                "capacity_fee": sats_integer(),
                "duration_fee": sats_integer(),
                "total_fee": sats_integer(),
                "applied_discount": sats_integer(),
                "discount_code": nullable(string.clone()),
            }),
        ),
        "NetworkInfo": object(&["network", "height"], json!({
            "network": {
                "type": "string",
                "enum": ["Mainnet", "Testnet", "Signet", "Regtest"],
                "description": "testnet4 is Testnet",
            },
            "height": integer,
        })),
        "QuoteRequest": request(
            &params_required,
            with(params(sats_string), json!({ "public_key": nullable(node_id()) })),
        ),
        "Quote": object(
            &["lsp_balance_sat", "client_balance_sat", "channel_expiry_blocks",
              "funding_confirms_within_blocks", "bolt11"],
            json!({
                "lsp_balance_sat": sats_string(),
                "client_balance_sat": sats_string(),
                "channel_expiry_blocks": expiry_blocks,
                "funding_confirms_within_blocks": confirmations,
                "bolt11": price,
                "onchain": price,
            }),
        ),
        "CancelRequest": request(&["order_id", "signature"], json!({
            "order_id": string,
            "signature": {
                "type": "string",
                "description": "Lightning signmessage (zbase32) of `cancel_order:<order_id>` by the order's node key",
            },
        })),
        "Error": object(&["error", "code", "message"], json!({
            "error": string,
            "code": { "type": "integer" },
            "message": string,
            "data": { "type": "object" },
        })),
        "ExtendableChannels": object(
            &["extendable_channels", "extendable_orders"],
            json!({
                "extendable_channels": { "type": "array", "items": extendable_channel },
                "extendable_orders": {
                    "type": "array",
                    "items": extendable_channel,
                    "description": "the same list, as ZEUS reads it",
                },
            }),
        ),
        "ExtensionOrderRequest": request(
            &["public_key", "short_channel_id", "channel_extension_expiry_blocks"],
            json!({
                "public_key": node_id(),
                "short_channel_id": scid,
                "channel_extension_expiry_blocks": expiry_blocks,
                "token": nullable(string.clone()),
                "refund_onchain_address": nullable(string.clone()),
            }),
        ),
        "ExtensionOrder": object(
            &[
                "order_id",
                "short_channel_id",
                "channel_extension_expiry_blocks",
                "new_channel_expiry_block",
                "new_channel_expiry_blocks",
                "token",
                "created_at",
                "order_state",
                "payment",
                "channel",
            ],
            json!({
                "order_id": string,
                "short_channel_id": scid,
                "channel_extension_expiry_blocks": expiry_blocks,
                "new_channel_expiry_block": height,
                "new_channel_expiry_blocks": height,
                "token": string,
                "created_at": time,
                "order_state": { "type": "string", "enum": ["CREATED", "COMPLETED", "FAILED"] },
                "payment": object(&[], json!({
                    "bolt11": payment(sats_string, false),
                    "onchain": payment(sats_string, true),
                })),
                "channel": extension_channel,
            }),
        ),
        "OpenApi": { "type": "object" },
    });
    for (name, schema) in open_lsp_schemas() {
        all[name] = schema;
    }
    all
}

/// The schemas of the open LSP API (`super::super::open_lsp`): amounts as integers.
fn open_lsp_schemas() -> Vec<(&'static str, Value)> {
    let string = json!({ "type": "string" });
    let integer = json!({ "type": "integer", "minimum": 0 });
    let boolean = json!({ "type": "boolean" });
    vec![
        (
            "LnurlChannel",
            object(
                &[],
                json!({
                    "tag": { "type": "string", "enum": ["channelRequest"] },
                    "uri": string,
                    "callback": string,
                    "k1": string,
                    "status": { "type": "string", "enum": ["OK", "ERROR"] },
                    "reason": string,
                }),
            ),
        ),
        (
            "NodeInfo",
            object(
                &[
                    "node_id",
                    "uris",
                    "min_remote_balance",
                    "max_remote_balance",
                    "max_channel_expiry",
                ],
                json!({
                    "node_id": node_id(),
                    "uris": { "type": "array", "items": string },
                    "min_remote_balance": sats_integer(),
                    "max_remote_balance": sats_integer(),
                    "min_local_balance": sats_integer(),
                    "max_local_balance": sats_integer(),
                    "min_channel_balance": sats_integer(),
                    "max_channel_balance": sats_integer(),
                    "max_channel_expiry": { "type": "integer", "minimum": 0, "description": "weeks" },
                    "onchain_payment": boolean,
                }),
            ),
        ),
        (
            "ChannelBuyRequest",
            request(
                &["remote_balance", "channel_expiry"],
                json!({
                    "remote_balance": sats_integer(),
                    "local_balance": sats_integer(),
                    "channel_expiry": { "type": "integer", "minimum": 1, "description": "weeks of 1008 blocks" },
                    "private": boolean,
                    "coupon_code": nullable(string.clone()),
                    "refund_address": nullable(string.clone()),
                    "refund_onchain_address": nullable(string.clone()),
                }),
            ),
        ),
        (
            "ChannelQuote",
            object(
                &[
                    "order_id",
                    "ln_invoice",
                    "total_amount",
                    "btc_address",
                    "lnurl_channel",
                ],
                json!({
                    "order_id": { "type": "string", "description": "the claim token: a bearer secret" },
                    "ln_invoice": string,
                    "total_amount": sats_integer(),
                    "btc_address": { "type": "string", "description": "empty without a refund address" },
                    "onchain_total_amount": nullable(sats_integer()),
                    "lnurl_channel": nullable(string.clone()),
                }),
            ),
        ),
        (
            "ManualFinaliseRequest",
            request(
                &["order_id"],
                json!({
                    "order_id": string,
                    "remote_id": { "type": "string", "description": "node_key@ip:port, or node_key" },
                    "node_uri": nullable(string.clone()),
                    "node_connection_info": nullable(string.clone()),
                }),
            ),
        ),
        (
            "ChannelOrder",
            object(
                &[
                    "_id",
                    "local_balance",
                    "remote_balance",
                    "channel_expiry",
                    "channel_expiry_ts",
                    "order_expiry",
                    "total_amount",
                    "btc_address",
                    "created_at",
                    "amount_received",
                    "remote_node",
                    "channel_open_tx",
                    "purchase_invoice",
                    "lnurl",
                    "state",
                    "onchain_payments",
                ],
                json!({
                    "_id": string,
                    "local_balance": sats_integer(),
                    "remote_balance": sats_integer(),
                    "channel_expiry": integer,
                    "channel_expiry_ts": integer,
                    "order_expiry": integer,
                    "total_amount": sats_integer(),
                    "btc_address": string,
                    "created_at": integer,
                    "amount_received": sats_integer(),
                    "remote_node": nullable(object(&["pubkey"], json!({ "pubkey": node_id() }))),
                    "channel_open_tx": nullable(object(
                        &["transaction_id", "transaction_vout"],
                        json!({ "transaction_id": string, "transaction_vout": integer }),
                    )),
                    "purchase_invoice": string,
                    "lnurl": nullable(object(&["url", "lnurl"], json!({ "url": string, "lnurl": string }))),
                    "state": { "type": "string", "enum": [
                        "CREATED", "PAID", "URI_SET", "OPENING", "OPEN", "CLOSING", "CLOSED", "GIVE_UP",
                    ] },
                    "onchain_payments": { "type": "array", "items": object(
                        &["tx_id", "vout", "amount_base", "confirmed"],
                        json!({ "tx_id": string, "vout": integer, "amount_base": sats_integer(),
                                "confirmed": boolean }),
                    ) },
                }),
            ),
        ),
    ]
}
