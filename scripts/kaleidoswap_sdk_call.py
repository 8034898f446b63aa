"""One LSPS1 call of kaleidoswap-sdk's maker client, for scripts/kaleidoswap-sdk.

    python kaleidoswap_sdk_call.py BASE_URL CALL [JSON_BODY]

Prints one JSON object on stdout: {"ok": <the SDK's parsed model, dumped as JSON>} when the
call succeeded, or {"error": {"class", "code", "status", "message", "body"}} when the SDK
raised its own error for an HTTP error answer. An answer the SDK's models cannot read raises
pydantic's ValidationError: the script then exits non-zero with the SDK's own traceback.
"""

import asyncio
import json
import sys

from kaleido_sdk import (
    CreateOrderRequest,
    KaleidoClient,
    KaleidoError,
    OrderRequest,
    RateDecisionRequest,
    RetryDeliveryRequest,
)

# Each call and the request model its body is read into (None: the call takes no body).
CALLS = {
    "get_lsp_info": None,
    "get_lsp_network_info": None,
    "estimate_lsp_fees": CreateOrderRequest,
    "create_lsp_order": CreateOrderRequest,
    "get_lsp_order": OrderRequest,
    "submit_lsp_rate_decision": RateDecisionRequest,
    "retry_asset_delivery": RetryDeliveryRequest,
}


async def call(base_url, name, body):
    # No retries: every answer the SDK sees is the node's first.
    client = KaleidoClient.create(base_url=base_url, max_retries=0, timeout=20)
    method = getattr(client.maker, name)
    model = CALLS[name]
    try:
        result = await (method() if model is None else method(model(**body)))
    except KaleidoError as error:
        return {
            "error": {
                "class": type(error).__name__,
                "code": error.code,
                "status": error.status_code,
                "message": str(error),
                "body": error.response_body,
            }
        }
    finally:
        await client.close()
    return {"ok": result.model_dump(mode="json")}


def main():
    if len(sys.argv) not in (3, 4) or sys.argv[2] not in CALLS:
        sys.exit(f"usage: {sys.argv[0]} BASE_URL CALL [JSON_BODY]; CALL is one of {', '.join(CALLS)}")
    body = json.loads(sys.argv[3]) if len(sys.argv) == 4 else {}
    print(json.dumps(asyncio.run(call(sys.argv[1], sys.argv[2], body))))


if __name__ == "__main__":
    main()
