import type { Config } from "./config";

/** The usage log as CSV from the REST API beside the GraphQL endpoint
 * (`GET /api/v1/me/usage.csv`, with the model and request-id filters), saved as
 * usage.csv. Fetched with the bearer token, since a plain link could not carry it. */
export async function downloadUsageCsv(config: Config, filter: { model: string; requestId: string }): Promise<void> {
  const url = new URL("/api/v1/me/usage.csv", config.apiUrl);
  if (filter.model) url.searchParams.set("model", filter.model);
  if (filter.requestId) url.searchParams.set("request_id", filter.requestId);
  const response = await fetch(url, { headers: config.token ? { authorization: `Bearer ${config.token}` } : {} });
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
