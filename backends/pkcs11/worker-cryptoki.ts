/**
 * The Cryptoki instance of the PKCS#11 worker thread (worker.ts): the module is loaded and
 * initialised once (C_Initialize) on first use, initialised again after CKR_CRYPTOKI_NOT_INITIALIZED,
 * and finalized and unloaded when the last connection closes. Worker thread only.
 */
import pkcs11js from 'pkcs11js';
import { BackendError } from '../types.js';
import { CKR, ckrOf, isCkr } from './errors.js';

export class Cryptoki {
  private lib: pkcs11js.PKCS11 | null = null;

  constructor(readonly modulePath: string) {}

  /** The library, loaded and initialised on first use. */
  library(): pkcs11js.PKCS11 {
    if (this.lib !== null) return this.lib;
    const p = new pkcs11js.PKCS11();
    try {
      p.load(this.modulePath);
    } catch (e) {
      const msg = e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e);
      throw new BackendError('UNAVAILABLE', `cannot load PKCS#11 module "${this.modulePath}": ${msg}`);
    }
    try {
      p.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (e) {
      if (!isCkr(e, CKR.CRYPTOKI_ALREADY_INITIALIZED)) {
        try {
          p.close();
        } catch {
          // the library is being abandoned anyway
        }
        const name = ckrOf(e)?.name ?? (e instanceof Error ? e.message : String(e));
        throw new BackendError(
          'UNAVAILABLE',
          `cannot initialise PKCS#11 module "${this.modulePath}" (${name})` +
            (name === 'CKR_GENERAL_ERROR' ? '; for SoftHSM check SOFTHSM2_CONF and that its tokendir exists and is readable' : ''),
        );
      }
    }
    this.lib = p;
    return p;
  }

  /** The library if it is loaded; never loads it. */
  get loaded(): pkcs11js.PKCS11 | null {
    return this.lib;
  }

  /**
   * C_Initialize again after CKR_CRYPTOKI_NOT_INITIALIZED (nothing to do when no library is
   * loaded). Throws the library's error unless it answers CKR_CRYPTOKI_ALREADY_INITIALIZED.
   */
  reinitialize(): void {
    if (this.lib === null) return;
    try {
      this.lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (e) {
      if (!isCkr(e, CKR.CRYPTOKI_ALREADY_INITIALIZED)) throw e;
    }
  }

  /** C_Finalize and unload; the next library() call loads the module again. */
  finalize(): void {
    if (this.lib === null) return;
    const p = this.lib;
    this.lib = null;
    try {
      p.C_Finalize();
    } catch {
      // already finalized or never fully initialized
    }
    try {
      p.close();
    } catch {
      // unloading is best effort
    }
  }
}
