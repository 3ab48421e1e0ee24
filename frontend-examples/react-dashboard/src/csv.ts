import type { Config } from "./config";

/** The usage log as CSV from the REST API beside the GraphQL endpoint
 * (`GET /api/v1/me/usage.csv`, with the model filter), saved as usage.csv. Fetched with
 * the bearer token, since a plain link could not carry it. */
export async function downloadUsageCsv(config: Config, model: string): Promise<void> {
  const url = new URL("/api/v1/me/usage.csv", config.httpUrl);
  if (model) url.searchParams.set("model", model);
  const response = await fetch(url, { headers: { authorization: `Bearer ${config.token}` } });
  if (!response.ok) {
    const body = (await response.json().catch(() => null)) as { message?: string } | null;
    throw new Error(body?.message ?? `${response.status} ${response.statusText}`);
  }
  const href = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = href;
  link.download = "usage.csv";
  link.click();
  // Later, not at once: the download reads the blob after click() returns.
  window.setTimeout(() => URL.revokeObjectURL(href), 10_000);
}
