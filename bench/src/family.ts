/**
 * The IP families the netns guest reaches the host over. Each family's rows have the host's
 * servers on that family's loopback, and the guest dials the peer's address for it.
 */
export type Family = 4 | 6;

/** In the order the rows are measured and printed. */
export const families: readonly Family[] = [4, 6];

/** The host's loopback address of the family: where the host-side servers listen. */
export function loopbackOf(family: Family): string {
  return family === 4 ? "127.0.0.1" : "::1";
}

/** " IPv6" after a label or tag for the IPv6 rows; nothing for IPv4 (its rows keep their names). */
export function familySuffix(family: Family): string {
  return family === 4 ? "" : " IPv6";
}

/**
 * Where the guest dials to reach the host's loopback over one family, or why the peer offers no
 * such address (that family's rows then print "—" instead of failing).
 */
export type HostAddress = string | { unavailable: string };

export function unavailableReason(address: HostAddress | undefined): string | undefined {
  return typeof address === "object" ? address.unavailable : undefined;
}
