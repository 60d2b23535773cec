/** One measured number, or the reason there is none (shown as "fail" in the table). */
export interface Figure {
  value: number | null;
  error?: string;
  /** Extra numbers worth keeping in the JSON (retransmits, sample counts, ...). */
  detail?: Record<string, number>;
}

export function failed(err: unknown): Figure {
  return { value: null, error: err instanceof Error ? err.message : String(err) };
}

/** Runs `measure`, turning any exception into a failed figure. */
export async function attempt(measure: () => Promise<Figure>): Promise<Figure> {
  try {
    return await measure();
  } catch (err) {
    return failed(err);
  }
}
