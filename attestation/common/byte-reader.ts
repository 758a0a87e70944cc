/**
 * A bounds-checked cursor over a byte buffer, little- or big-endian (TCG event logs are
 * little-endian, TPM structures big-endian). Every read checks the remaining length first and calls
 * `fail` (which must throw the caller's own error type) instead of reading past the end.
 */
export class ByteReader {
  private position = 0;

  constructor(
    private readonly buf: Buffer,
    private readonly endian: 'le' | 'be',
    private readonly fail: (message: string) => never,
  ) {}

  get pos(): number {
    return this.position;
  }

  get remaining(): number {
    return this.buf.length - this.position;
  }

  private need(n: number, what: string): void {
    if (n < 0 || this.position + n > this.buf.length) this.fail(`truncated ${what}`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.position++] as number;
  }

  u16(what: string): number {
    this.need(2, what);
    const v = this.endian === 'le' ? this.buf.readUInt16LE(this.position) : this.buf.readUInt16BE(this.position);
    this.position += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.endian === 'le' ? this.buf.readUInt32LE(this.position) : this.buf.readUInt32BE(this.position);
    this.position += 4;
    return v;
  }

  u64(what: string): bigint {
    this.need(8, what);
    const v = this.endian === 'le' ? this.buf.readBigUInt64LE(this.position) : this.buf.readBigUInt64BE(this.position);
    this.position += 8;
    return v;
  }

  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const v = this.buf.subarray(this.position, this.position + n);
    this.position += n;
    return v;
  }

  /** Fails unless every byte was read. */
  end(what: string): void {
    if (this.position !== this.buf.length) this.fail(`${this.buf.length - this.position} trailing bytes after ${what}`);
  }
}
