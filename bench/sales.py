"""The HTTP calls of one sale, as the POS page and a paying customer make them (async, httpx)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from bench.load import OperationFailed, expect_status

SALE_SATS = 1_100
TIP_SATS = 100  # split two ways between the stack's tip recipients
STATUS_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class SaleTarget:
    """Where sales go: the service, the simulator, the merchant and the tip recipients."""

    service_url: str
    simulator_url: str
    merchant: dict[str, Any]
    tipees: tuple[dict[str, Any], ...]


def invoice_body(target: SaleTarget, amount: int = SALE_SATS, tip: int = TIP_SATS) -> dict[str, Any]:
    """A create-invoice body as the POS page sends it, the tip split between every tip recipient."""
    body: dict[str, Any] = {
        "amount": amount,
        "currency": "BTC",
        "apiKey": target.merchant["apiKey"],
        "userWalletId": target.merchant["btcWalletId"],
        "memo": "bench sale",
        "displayCurrency": "BTC",
        "baseAmount": amount - tip,
        "tipAmount": tip,
    }
    if tip:
        body["tipRecipients"] = [{"username": t["username"], "share": 1} for t in target.tipees]
    return body


async def create_invoice(http: httpx.AsyncClient, target: SaleTarget, **body: Any) -> dict[str, Any]:
    response = await http.post(
        f"{target.service_url}/api/blink/create-invoice", json=invoice_body(target, **body)
    )
    return expect_status(response, 200).json()["invoice"]


async def customer_pays(http: httpx.AsyncClient, target: SaleTarget, payment_hash: str) -> None:
    """The customer's wallet pays the invoice (the simulator's POST /sim/invoices/<hash>/pay, as
    SimControl.pay calls it; here async so 128 clients need no thread each)."""
    response = await http.post(f"{target.simulator_url}/sim/invoices/{payment_hash}/pay")
    if response.status_code == 409 and response.json().get("status") == "ALREADY_PAID":
        return  # a retried pay whose first attempt went through
    expect_status(response, 200)


async def forward(http: httpx.AsyncClient, target: SaleTarget, payment_hash: str) -> httpx.Response:
    return await http.post(
        f"{target.service_url}/api/blink/forward-with-tips", json={"paymentHash": payment_hash}
    )


async def payment_status(http: httpx.AsyncClient, target: SaleTarget, payment_hash: str) -> dict[str, Any]:
    response = await http.get(f"{target.service_url}/api/payment-status/{payment_hash}")
    return expect_status(response, 200).json()


async def wait_completed(
    http: httpx.AsyncClient, target: SaleTarget, payment_hash: str, timeout: float = 30.0
) -> None:
    """Polls the payment status as the POS page does while someone else forwards the sale."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if (await payment_status(http, target, payment_hash))["status"] == "completed":
            return
        await asyncio.sleep(STATUS_POLL_SECONDS)
    raise OperationFailed("sale not completed in time")


async def whole_sale(http: httpx.AsyncClient, target: SaleTarget) -> None:
    """Create, pay, forward with a 2-way tip; succeeds once the sale is forwarded.

    A 409 forwarding_in_progress (the worker or a webhook got there first) is followed by polling
    the payment status until completed, as the POS page does.
    """
    invoice = await create_invoice(http, target)
    await customer_pays(http, target, invoice["paymentHash"])
    response = await forward(http, target, invoice["paymentHash"])
    if response.status_code == 409 and response.json().get("code") == "forwarding_in_progress":
        await wait_completed(http, target, invoice["paymentHash"])
        return
    if expect_status(response, 200).json()["details"]["forwardedAmount"] != SALE_SATS - TIP_SATS:
        raise OperationFailed("forwarded amount differs from the sale's base")
