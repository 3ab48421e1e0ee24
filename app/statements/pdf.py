"""Receipts and statements as PDF, drawn from their JSON documents (the REST answers), so
both forms always show the same figures.

fpdf2 draws them: pure Python, typed, and with the PDF core fonts built in (no font file
to ship). Those fonts cover Latin-1; other characters (an organization's name in
Chinese, say) print as "?", while the JSON keeps them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

_FONT = "Helvetica"
_LABEL_WIDTH = 60
_ROW = 7


def _text(value: object) -> str:
    return str(value).encode("latin-1", "replace").decode("latin-1")


class _Document(FPDF):
    def __init__(self, title: str, created: datetime) -> None:
        super().__init__(format="A4")
        self.set_title(_text(title))
        self.set_creator("creditgraph")
        self.set_creation_date(created)
        self.set_margins(20, 20, 20)
        self.add_page()
        self.set_font(_FONT, "B", 18)
        self.cell(0, 12, _text(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(_FONT, size=10)

    def row(self, label: str, value: object, *, bold: bool = False) -> None:
        self.set_font(_FONT, "B" if bold else "", 10)
        self.cell(_LABEL_WIDTH, _ROW, _text(label))
        self.multi_cell(0, _ROW, _text(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def heading(self, text: str) -> None:
        self.ln(4)
        self.set_font(_FONT, "B", 12)
        self.cell(0, 9, _text(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(_FONT, size=10)

    def grid(self, header: tuple[str, ...], rows: list[tuple[str, ...]], words: int) -> None:
        """A table: its first ``words`` columns left-aligned, the figures after them right."""
        self.set_font(_FONT, size=9)
        align = ("LEFT",) * words + ("RIGHT",) * (len(header) - words)
        with self.table(text_align=align) as table:
            for cells in (header, *rows):
                line = table.row()
                for cell in cells:
                    line.cell(_text(cell))
        self.set_font(_FONT, size=10)

    def render(self) -> bytes:
        return bytes(self.output())


def _credits(amount: dict[str, str], unit: str) -> str:
    """An amount of the wallet's credits as the dashboards show it: USD, or plan credits."""
    return f"{amount['usd']} USD" if unit == "usd" else f"{amount['usd']} credits"


def receipt_pdf(document: dict[str, Any]) -> bytes:
    """A receipt (``documents.receipt_document``) as a one-page PDF."""
    issued = datetime.fromisoformat(document["issued_at"])
    pdf = _Document(f"Receipt {document['number']}", issued)
    organization = document["organization"]
    unit = document["unit"]
    pdf.row("Organization", f"{organization['name']} ({organization['slug']})")
    pdf.row("Issued", issued.strftime("%Y-%m-%d %H:%M UTC"))
    pdf.row("For", document["description"])
    if document["refund_of"] is not None:
        pdf.row("Refund of receipt", document["refund_of"])
    pdf.row("Total", f"{document['amount']} {document['currency']}", bold=True)
    if document["tax"] is not None:
        pdf.row("Of which tax", f"{document['tax']} {document['currency']}")
    pdf.row("Credits", _credits(document["credits"], unit))
    if document["bonus"]["credits"] != "0":
        pdf.row("Bonus credits", _credits(document["bonus"], unit))
    card = document["payment_method"]
    if card is not None:
        pdf.row("Paid with", f"{card['brand'].title()} ending {card['last4']}")
    if document["provider_reference"] is not None:
        pdf.row("Payment reference", document["provider_reference"])
    return pdf.render()


_LINES = (
    ("purchases", "Purchases"),
    ("bonuses", "Bonuses"),
    ("grants", "Grants"),
    ("adjustments", "Adjustments"),
    ("usage", "Usage"),
    ("overage", "Overage settled"),
    ("expiries", "Expiries"),
    ("refunds", "Refunds"),
)


def statement_pdf(document: dict[str, Any]) -> bytes:
    """A statement (``documents.statement_document``) as a PDF: its figures, the usage by
    model and action, and the month's receipts."""
    start = datetime.fromisoformat(document["period_start"])
    pdf = _Document(f"Statement {document['month']}", start)
    organization = document["organization"]
    unit = document["unit"]
    pdf.row("Organization", f"{organization['name']} ({organization['slug']})")
    last_day = datetime.fromisoformat(document["period_end"]) - timedelta(days=1)
    period = f"{start:%Y-%m-%d} to {last_day:%Y-%m-%d} (UTC)"
    pdf.row("Period", period if document["closed"] else f"{period}, still running")
    pdf.heading("Balance")
    pdf.row("Opening balance", _credits(document["opening_balance"], unit), bold=True)
    for key, label in _LINES:
        pdf.row(label, _credits(document[key], unit))
    pdf.row("Closing balance", _credits(document["closing_balance"], unit), bold=True)
    usage = document["usage_by_model_and_action"]
    if usage:
        pdf.heading("Usage by model and action")
        pdf.grid(
            ("Model", "Action", "Requests", "Amount"),
            [
                (u["model"], u["action"], str(u["requests"]), _credits(u["amount"], unit))
                for u in usage
            ],
            words=2,
        )
    if document["receipts"]:
        pdf.heading("Receipts")
        pdf.grid(
            ("Number", "Issued", "For", "Total"),
            [
                (
                    r["number"],
                    r["issued_at"][:10],
                    r["description"],
                    f"{r['amount']} {r['currency']}",
                )
                for r in document["receipts"]
            ],
            words=3,
        )
    return pdf.render()
