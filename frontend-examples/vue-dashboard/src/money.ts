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

/** A count with thousands grouping of its whole part, for reading: credits (an integer
 * string) or plan credits ("21000.5" -> "21,000.5"). */
export function formatCredits(credits: string): string {
  const [whole, fraction] = credits.split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+$)/g, ",");
  return fraction === undefined ? grouped : `${grouped}.${fraction}`;
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

/** Plan credits (8bit-ai), from an Amount's `usd`, which counts them there: whole ones
 * grouped, decimals only when fractional ("21,000 credits", "0.25 credits", "1 credit"). */
export function formatPlanCredits(usd: string): string {
  const count = trimDecimal(usd);
  return `${formatCredits(count)} ${count.replace(/^-/, "") === "1" ? "credit" : "credits"}`;
}

/** An amount of the wallet in the organization's unit (`useUnit`, SpendCap.unit): USD, or
 * plan credits (8bit-ai), whose `usd` field then counts credits, not dollars. "…" while
 * the unit is unknown, rather than a guess. What is paid in dollars is `formatUsd`'s. */
export function formatInUnit(usd: string, unit: string | null): string {
  if (unit === null) return "…";
  return unit === "usd" ? formatUsd(usd) : formatPlanCredits(usd);
}

/** The unit's name for a form field's label: "USD" or "plan credits". */
export function unitName(unit: string | null): string {
  return unit === null || unit === "usd" ? "USD" : "plan credits";
}

/** Money paid in its currency (a Price: a plan's, a receipt's total): USD as `formatUsd`,
 * another currency's Decimal trimmed and named ("88 CNY"). */
export function formatMoney(price: { amount: string; currency: string }): string {
  return price.currency === "USD" ? formatUsd(price.amount) : `${trimDecimal(price.amount)} ${price.currency}`;
}

/** A plan's price per period; null is priced by contract. */
export function formatPrice(price: { amount: string; currency: string } | null | undefined, period: string): string {
  if (!price) return "by contract";
  return `${formatMoney(price)} / ${period}`;
}
