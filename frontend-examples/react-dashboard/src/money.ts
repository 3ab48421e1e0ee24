/** The API's USD Decimal string as shown: "$" + at least 2 decimals, trailing zeros
 * past 2 trimmed, no thousands separators ("25.994000" -> "$25.994", "-0.5" -> "-$0.50").
 * String arithmetic only: money never becomes a float. */
export function formatUsd(usd: string): string {
  const negative = usd.startsWith("-");
  const [whole, fraction = ""] = usd.replace(/^[-+]/, "").split(".");
  const decimals = fraction.replace(/0+$/, "").padEnd(2, "0");
  const isZero = /^0*$/.test(whole) && /^0*$/.test(fraction);
  return `${negative && !isZero ? "-" : ""}$${whole || "0"}.${decimals}`;
}

/** Credits (an integer as a string) with thousands grouping, for reading only. */
export function formatCredits(credits: string): string {
  return credits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** A USD Decimal string as a form field shows it: "2.000000" -> "2.00", "0.125000" -> "0.125". */
export function usdInput(usd: string): string {
  return formatUsd(usd).replace("$", "");
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
export function formatPrice(price: { amount: string; currency: string } | null, period: string): string {
  if (price === null) return "by contract";
  const amount = price.currency === "USD" ? formatUsd(price.amount) : `${trimDecimal(price.amount)} ${price.currency}`;
  return `${amount} / ${period}`;
}
