/** A mutation's outcome for the user: its transport/GraphQL error, else its userErrors'
 * messages joined; null when it went through. Shown in a `role="alert"` paragraph. */
export function problemOf(
  error: { message: string } | undefined,
  userErrors: { message: string }[] | undefined,
): string | null {
  return error?.message ?? (userErrors?.map((e) => e.message).join("; ") || null);
}
