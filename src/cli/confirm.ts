// The typed confirmation of the verbs that destroy data (remove, restore), Patroni's wording: type the cluster name,
// then "Yes I am aware". A wrong answer aborts with nothing changed.
import { PgwardenError } from '../util/errors.js';

export interface TypedConfirmation {
  readonly cluster: string;
  /** The verb as the name question says it: "remove", "restore". */
  readonly verb: string;
  /** What will happen, after "You are about to ". */
  readonly what: string;
  /** The participle for the hint: "nothing was removed". */
  readonly undone: string;
  readonly command: readonly string[];
}

export async function confirmTyped(readLine: (prompt: string) => Promise<string>, confirmation: TypedConfirmation): Promise<void> {
  const { cluster } = confirmation;
  const aborted = (message: string, hint: string): PgwardenError =>
    new PgwardenError('PGW_CLI_ABORTED', message, { context: { command: [...confirmation.command], scope: cluster, hint } });
  if ((await readLine(`Please confirm the cluster name to ${confirmation.verb}: `)) !== cluster)
    throw aborted('Cluster names specified do not match', `nothing was ${confirmation.undone}: type the cluster name ${cluster} exactly`);
  if ((await readLine(`You are about to ${confirmation.what}, please type: "Yes I am aware": `)) !== 'Yes I am aware')
    throw aborted('You did not exactly type "Yes I am aware"', `nothing was ${confirmation.undone}: type Yes I am aware exactly`);
}
