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
