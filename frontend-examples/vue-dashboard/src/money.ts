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
