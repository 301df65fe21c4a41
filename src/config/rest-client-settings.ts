// How a config file's ctl and restapi sections become the REST client's settings, with patronictl's precedence
// (patroni/request.py): every ctl key first, its restapi counterpart as the fallback.
import type { RestClientSettings, RestCredentials } from '../util/rest-client.js';

interface TlsSection {
  readonly certfile?: string | undefined;
  readonly keyfile?: string | undefined;
  readonly keyfile_password?: string | undefined;
  readonly authentication?: RestCredentials | undefined;
}

export interface RestSections {
  readonly ctl?: (TlsSection & { readonly cacert?: string | undefined; readonly insecure?: boolean | undefined }) | undefined;
  readonly restapi?: (TlsSection & { readonly cafile?: string | undefined }) | undefined;
}

/**
 * - credentials: ctl.authentication, else restapi.authentication;
 * - CA: ctl.cacert, else restapi.cafile;
 * - client certificate: ctl.certfile, else restapi.certfile, with the keyfile and keyfile_password of the same section
 *   (Patroni mixes sections key by key; a ctl certificate with the REST server's key never works, so they stay paired);
 * - insecure: the -k flag when given, else ctl.insecure, else false.
 */
export function restClientSettings(
  sections: RestSections,
  overrides: { readonly isInsecure?: boolean | undefined } = {},
): RestClientSettings {
  const { ctl, restapi } = sections;
  const credentials =
    ctl?.authentication !== undefined
      ? { ...ctl.authentication, key: 'ctl.authentication' }
      : restapi?.authentication !== undefined
        ? { ...restapi.authentication, key: 'restapi.authentication' }
        : undefined;
  const cacert =
    ctl?.cacert !== undefined
      ? { path: ctl.cacert, key: 'ctl.cacert' }
      : restapi?.cafile !== undefined
        ? { path: restapi.cafile, key: 'restapi.cafile' }
        : undefined;
  const [certSection, certName] = ctl?.certfile !== undefined ? [ctl, 'ctl'] : restapi?.certfile !== undefined ? [restapi, 'restapi'] : [];
  return {
    ...(credentials !== undefined ? { credentials } : {}),
    ...(cacert !== undefined ? { cacert } : {}),
    ...(certSection?.certfile !== undefined
      ? {
          certfile: { path: certSection.certfile, key: `${certName!}.certfile` },
          ...(certSection.keyfile !== undefined ? { keyfile: { path: certSection.keyfile, key: `${certName!}.keyfile` } } : {}),
          ...(certSection.keyfile_password !== undefined ? { keyfilePassword: certSection.keyfile_password } : {}),
        }
      : {}),
    isInsecure: overrides.isInsecure ?? ctl?.insecure === true,
  };
}
