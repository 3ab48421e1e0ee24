// Display of the API's Decimal strings. Money stays a string end to end: the only
// conversion to a number is for chart geometry (chartValue), never for what is shown.

/** "$" + the USD Decimal string: at least 2 decimals, trailing zeros beyond 2 trimmed,
 * no thousands separators: "25.994000" -> "$25.994", "100" -> "$100.00", "-0.5" -> "-$0.50". */
export function formatUsd(usd: string): string {
  const match = /^(-?)(\d+)(?:\.(\d*))?$/.exec(usd.trim());
  if (!match) return usd;
  const [, sign, whole, fraction = ""] = match;
  const decimals = fraction.replace(/0+$/, "").padEnd(2, "0");
  const negative = sign === "-" && /[1-9]/.test(whole + fraction);
  return `${negative ? "-" : ""}$${whole}.${decimals}`;
}

/** Credits (an integer string) with thousands grouping, for reading large counts. */
export function formatCredits(credits: string): string {
  return credits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** A bar's height in a chart. Display geometry only. */
export function chartValue(usd: string): number {
  return Number(usd);
}

/** A USD amount a person typed: digits with at most 6 decimals, as the API accepts. */
export function isUsdInput(text: string): boolean {
  return /^\d+(\.\d{1,6})?$/.test(text.trim());
}

/** A Decimal string without its trailing zeros: "25000.000000" -> "25000", "0.50" -> "0.5". */
export function trimDecimal(value: string): string {
  return value.includes(".") ? value.replace(/0+$/, "").replace(/\.$/, "") : value;
}

/** Plan credits (8bit-ai), from an Amount's `usd`, which counts them there: "1,000 credits". */
export function formatPlanCredits(usd: string): string {
  return `${formatCredits(trimDecimal(usd))} credits`;
}

/** An amount in the organization's unit (SpendCap.unit): USD, or plan credits (8bit-ai),
 * whose `usd` field then counts credits, not dollars. */
export function formatInUnit(usd: string, unit: string): string {
  return unit === "usd" ? formatUsd(usd) : formatPlanCredits(usd);
}

/** A plan's price per period; null is priced by contract. */
export function formatPrice(price: { amount: string; currency: string } | null | undefined, period: string): string {
  if (!price) return "by contract";
  const amount = price.currency === "USD" ? formatUsd(price.amount) : `${trimDecimal(price.amount)} ${price.currency}`;
  return `${amount} / ${period}`;
}
