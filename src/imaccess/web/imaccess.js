// node_modules/flatbuffers/mjs/constants.js
var SIZEOF_SHORT = 2;
var SIZEOF_INT = 4;
var FILE_IDENTIFIER_LENGTH = 4;
var SIZE_PREFIX_LENGTH = 4;

// node_modules/flatbuffers/mjs/utils.js
var int32 = new Int32Array(2);
var float32 = new Float32Array(int32.buffer);
var float64 = new Float64Array(int32.buffer);
var isLittleEndian = new Uint16Array(new Uint8Array([1, 0]).buffer)[0] === 1;

// node_modules/flatbuffers/mjs/encoding.js
var Encoding;
(function(Encoding2) {
  Encoding2[Encoding2["UTF8_BYTES"] = 1] = "UTF8_BYTES";
  Encoding2[Encoding2["UTF16_STRING"] = 2] = "UTF16_STRING";
})(Encoding || (Encoding = {}));

// node_modules/flatbuffers/mjs/byte-buffer.js
var ByteBuffer = class _ByteBuffer {
  /**
   * Create a new ByteBuffer with a given array of bytes (`Uint8Array`)
   */
  constructor(bytes_) {
    this.bytes_ = bytes_;
    this.position_ = 0;
    this.text_decoder_ = new TextDecoder();
  }
  /**
   * Create and allocate a new ByteBuffer with a given size.
   */
  static allocate(byte_size) {
    return new _ByteBuffer(new Uint8Array(byte_size));
  }
  clear() {
    this.position_ = 0;
  }
  /**
   * Get the underlying `Uint8Array`.
   */
  bytes() {
    return this.bytes_;
  }
  /**
   * Get the buffer's position.
   */
  position() {
    return this.position_;
  }
  /**
   * Set the buffer's position.
   */
  setPosition(position) {
    this.position_ = position;
  }
  /**
   * Get the buffer's capacity.
   */
  capacity() {
    return this.bytes_.length;
  }
  readInt8(offset) {
    return this.readUint8(offset) << 24 >> 24;
  }
  readUint8(offset) {
    return this.bytes_[offset];
  }
  readInt16(offset) {
    return this.readUint16(offset) << 16 >> 16;
  }
  readUint16(offset) {
    return this.bytes_[offset] | this.bytes_[offset + 1] << 8;
  }
  readInt32(offset) {
    return this.bytes_[offset] | this.bytes_[offset + 1] << 8 | this.bytes_[offset + 2] << 16 | this.bytes_[offset + 3] << 24;
  }
  readUint32(offset) {
    return this.readInt32(offset) >>> 0;
  }
  readInt64(offset) {
    return BigInt.asIntN(64, BigInt(this.readUint32(offset)) + (BigInt(this.readUint32(offset + 4)) << BigInt(32)));
  }
  readUint64(offset) {
    return BigInt.asUintN(64, BigInt(this.readUint32(offset)) + (BigInt(this.readUint32(offset + 4)) << BigInt(32)));
  }
  readFloat32(offset) {
    int32[0] = this.readInt32(offset);
    return float32[0];
  }
  readFloat64(offset) {
    int32[isLittleEndian ? 0 : 1] = this.readInt32(offset);
    int32[isLittleEndian ? 1 : 0] = this.readInt32(offset + 4);
    return float64[0];
  }
  writeInt8(offset, value) {
    this.bytes_[offset] = value;
  }
  writeUint8(offset, value) {
    this.bytes_[offset] = value;
  }
  writeInt16(offset, value) {
    this.bytes_[offset] = value;
    this.bytes_[offset + 1] = value >> 8;
  }
  writeUint16(offset, value) {
    this.bytes_[offset] = value;
    this.bytes_[offset + 1] = value >> 8;
  }
  writeInt32(offset, value) {
    this.bytes_[offset] = value;
    this.bytes_[offset + 1] = value >> 8;
    this.bytes_[offset + 2] = value >> 16;
    this.bytes_[offset + 3] = value >> 24;
  }
  writeUint32(offset, value) {
    this.bytes_[offset] = value;
    this.bytes_[offset + 1] = value >> 8;
    this.bytes_[offset + 2] = value >> 16;
    this.bytes_[offset + 3] = value >> 24;
  }
  writeInt64(offset, value) {
    this.writeInt32(offset, Number(BigInt.asIntN(32, value)));
    this.writeInt32(offset + 4, Number(BigInt.asIntN(32, value >> BigInt(32))));
  }
  writeUint64(offset, value) {
    this.writeUint32(offset, Number(BigInt.asUintN(32, value)));
    this.writeUint32(offset + 4, Number(BigInt.asUintN(32, value >> BigInt(32))));
  }
  writeFloat32(offset, value) {
    float32[0] = value;
    this.writeInt32(offset, int32[0]);
  }
  writeFloat64(offset, value) {
    float64[0] = value;
    this.writeInt32(offset, int32[isLittleEndian ? 0 : 1]);
    this.writeInt32(offset + 4, int32[isLittleEndian ? 1 : 0]);
  }
  /**
   * Return the file identifier.   Behavior is undefined for FlatBuffers whose
   * schema does not include a file_identifier (likely points at padding or the
   * start of a the root vtable).
   */
  getBufferIdentifier() {
    if (this.bytes_.length < this.position_ + SIZEOF_INT + FILE_IDENTIFIER_LENGTH) {
      throw new Error("FlatBuffers: ByteBuffer is too short to contain an identifier.");
    }
    let result = "";
    for (let i = 0; i < FILE_IDENTIFIER_LENGTH; i++) {
      result += String.fromCharCode(this.readInt8(this.position_ + SIZEOF_INT + i));
    }
    return result;
  }
  /**
   * Look up a field in the vtable, return an offset into the object, or 0 if the
   * field is not present.
   */
  __offset(bb_pos, vtable_offset) {
    const vtable = bb_pos - this.readInt32(bb_pos);
    return vtable_offset < this.readInt16(vtable) ? this.readInt16(vtable + vtable_offset) : 0;
  }
  /**
   * Initialize any Table-derived type to point to the union at the given offset.
   */
  __union(t, offset) {
    t.bb_pos = offset + this.readInt32(offset);
    t.bb = this;
    return t;
  }
  /**
   * Create a JavaScript string from UTF-8 data stored inside the FlatBuffer.
   * This allocates a new string and converts to wide chars upon each access.
   *
   * To avoid the conversion to string, pass Encoding.UTF8_BYTES as the
   * "optionalEncoding" argument. This is useful for avoiding conversion when
   * the data will just be packaged back up in another FlatBuffer later on.
   *
   * @param offset
   * @param opt_encoding Defaults to UTF16_STRING
   */
  __string(offset, opt_encoding) {
    offset += this.readInt32(offset);
    const length = this.readInt32(offset);
    offset += SIZEOF_INT;
    const utf8bytes = this.bytes_.subarray(offset, offset + length);
    if (opt_encoding === Encoding.UTF8_BYTES)
      return utf8bytes;
    else
      return this.text_decoder_.decode(utf8bytes);
  }
  /**
   * Handle unions that can contain string as its member, if a Table-derived type then initialize it,
   * if a string then return a new one
   *
   * WARNING: strings are immutable in JS so we can't change the string that the user gave us, this
   * makes the behaviour of __union_with_string different compared to __union
   */
  __union_with_string(o, offset) {
    if (typeof o === "string") {
      return this.__string(offset);
    }
    return this.__union(o, offset);
  }
  /**
   * Retrieve the relative offset stored at "offset"
   */
  __indirect(offset) {
    return offset + this.readInt32(offset);
  }
  /**
   * Get the start of data of a vector whose offset is stored at "offset" in this object.
   */
  __vector(offset) {
    return offset + this.readInt32(offset) + SIZEOF_INT;
  }
  /**
   * Get the length of a vector whose offset is stored at "offset" in this object.
   */
  __vector_len(offset) {
    return this.readInt32(offset + this.readInt32(offset));
  }
  __has_identifier(ident) {
    if (ident.length != FILE_IDENTIFIER_LENGTH) {
      throw new Error("FlatBuffers: file identifier must be length " + FILE_IDENTIFIER_LENGTH);
    }
    for (let i = 0; i < FILE_IDENTIFIER_LENGTH; i++) {
      if (ident.charCodeAt(i) != this.readInt8(this.position() + SIZEOF_INT + i)) {
        return false;
      }
    }
    return true;
  }
  /**
   * A helper function for generating list for obj api
   */
  createScalarList(listAccessor, listLength) {
    const ret = [];
    for (let i = 0; i < listLength; ++i) {
      const val = listAccessor(i);
      if (val !== null) {
        ret.push(val);
      }
    }
    return ret;
  }
  /**
   * A helper function for generating list for obj api
   * @param listAccessor function that accepts an index and return data at that index
   * @param listLength listLength
   * @param res result list
   */
  createObjList(listAccessor, listLength) {
    const ret = [];
    for (let i = 0; i < listLength; ++i) {
      const val = listAccessor(i);
      if (val !== null) {
        ret.push(val.unpack());
      }
    }
    return ret;
  }
};

// node_modules/flatbuffers/mjs/builder.js
var Builder = class _Builder {
  /**
   * Create a FlatBufferBuilder.
   */
  constructor(opt_initial_size) {
    this.minalign = 1;
    this.vtable = null;
    this.vtable_in_use = 0;
    this.isNested = false;
    this.object_start = 0;
    this.vtables = [];
    this.vector_num_elems = 0;
    this.force_defaults = false;
    this.string_maps = null;
    this.text_encoder = new TextEncoder();
    let initial_size;
    if (!opt_initial_size) {
      initial_size = 1024;
    } else {
      initial_size = opt_initial_size;
    }
    this.bb = ByteBuffer.allocate(initial_size);
    this.space = initial_size;
  }
  clear() {
    this.bb.clear();
    this.space = this.bb.capacity();
    this.minalign = 1;
    this.vtable = null;
    this.vtable_in_use = 0;
    this.isNested = false;
    this.object_start = 0;
    this.vtables = [];
    this.vector_num_elems = 0;
    this.force_defaults = false;
    this.string_maps = null;
  }
  /**
   * In order to save space, fields that are set to their default value
   * don't get serialized into the buffer. Forcing defaults provides a
   * way to manually disable this optimization.
   *
   * @param forceDefaults true always serializes default values
   */
  forceDefaults(forceDefaults) {
    this.force_defaults = forceDefaults;
  }
  /**
   * Get the ByteBuffer representing the FlatBuffer. Only call this after you've
   * called finish(). The actual data starts at the ByteBuffer's current position,
   * not necessarily at 0.
   */
  dataBuffer() {
    return this.bb;
  }
  /**
   * Get the bytes representing the FlatBuffer. Only call this after you've
   * called finish().
   */
  asUint8Array() {
    return this.bb.bytes().subarray(this.bb.position(), this.bb.position() + this.offset());
  }
  /**
   * Prepare to write an element of `size` after `additional_bytes` have been
   * written, e.g. if you write a string, you need to align such the int length
   * field is aligned to 4 bytes, and the string data follows it directly. If all
   * you need to do is alignment, `additional_bytes` will be 0.
   *
   * @param size This is the of the new element to write
   * @param additional_bytes The padding size
   */
  prep(size, additional_bytes) {
    if (size > this.minalign) {
      this.minalign = size;
    }
    const align_size = ~(this.bb.capacity() - this.space + additional_bytes) + 1 & size - 1;
    while (this.space < align_size + size + additional_bytes) {
      const old_buf_size = this.bb.capacity();
      this.bb = _Builder.growByteBuffer(this.bb);
      this.space += this.bb.capacity() - old_buf_size;
    }
    this.pad(align_size);
  }
  pad(byte_size) {
    for (let i = 0; i < byte_size; i++) {
      this.bb.writeInt8(--this.space, 0);
    }
  }
  writeInt8(value) {
    this.bb.writeInt8(this.space -= 1, value);
  }
  writeInt16(value) {
    this.bb.writeInt16(this.space -= 2, value);
  }
  writeInt32(value) {
    this.bb.writeInt32(this.space -= 4, value);
  }
  writeInt64(value) {
    this.bb.writeInt64(this.space -= 8, value);
  }
  writeFloat32(value) {
    this.bb.writeFloat32(this.space -= 4, value);
  }
  writeFloat64(value) {
    this.bb.writeFloat64(this.space -= 8, value);
  }
  /**
   * Add an `int8` to the buffer, properly aligned, and grows the buffer (if necessary).
   * @param value The `int8` to add the buffer.
   */
  addInt8(value) {
    this.prep(1, 0);
    this.writeInt8(value);
  }
  /**
   * Add an `int16` to the buffer, properly aligned, and grows the buffer (if necessary).
   * @param value The `int16` to add the buffer.
   */
  addInt16(value) {
    this.prep(2, 0);
    this.writeInt16(value);
  }
  /**
   * Add an `int32` to the buffer, properly aligned, and grows the buffer (if necessary).
   * @param value The `int32` to add the buffer.
   */
  addInt32(value) {
    this.prep(4, 0);
    this.writeInt32(value);
  }
  /**
   * Add an `int64` to the buffer, properly aligned, and grows the buffer (if necessary).
   * @param value The `int64` to add the buffer.
   */
  addInt64(value) {
    this.prep(8, 0);
    this.writeInt64(value);
  }
  /**
   * Add a `float32` to the buffer, properly aligned, and grows the buffer (if necessary).
   * @param value The `float32` to add the buffer.
   */
  addFloat32(value) {
    this.prep(4, 0);
    this.writeFloat32(value);
  }
  /**
   * Add a `float64` to the buffer, properly aligned, and grows the buffer (if necessary).
   * @param value The `float64` to add the buffer.
   */
  addFloat64(value) {
    this.prep(8, 0);
    this.writeFloat64(value);
  }
  addFieldInt8(voffset, value, defaultValue) {
    if (this.force_defaults || value != defaultValue) {
      this.addInt8(value);
      this.slot(voffset);
    }
  }
  addFieldInt16(voffset, value, defaultValue) {
    if (this.force_defaults || value != defaultValue) {
      this.addInt16(value);
      this.slot(voffset);
    }
  }
  addFieldInt32(voffset, value, defaultValue) {
    if (this.force_defaults || value != defaultValue) {
      this.addInt32(value);
      this.slot(voffset);
    }
  }
  addFieldInt64(voffset, value, defaultValue) {
    if (this.force_defaults || value !== defaultValue) {
      this.addInt64(value);
      this.slot(voffset);
    }
  }
  addFieldFloat32(voffset, value, defaultValue) {
    if (this.force_defaults || value != defaultValue) {
      this.addFloat32(value);
      this.slot(voffset);
    }
  }
  addFieldFloat64(voffset, value, defaultValue) {
    if (this.force_defaults || value != defaultValue) {
      this.addFloat64(value);
      this.slot(voffset);
    }
  }
  addFieldOffset(voffset, value, defaultValue) {
    if (this.force_defaults || value != defaultValue) {
      this.addOffset(value);
      this.slot(voffset);
    }
  }
  /**
   * Structs are stored inline, so nothing additional is being added. `d` is always 0.
   */
  addFieldStruct(voffset, value, defaultValue) {
    if (value != defaultValue) {
      this.nested(value);
      this.slot(voffset);
    }
  }
  /**
   * Structures are always stored inline, they need to be created right
   * where they're used.  You'll get this assertion failure if you
   * created it elsewhere.
   */
  nested(obj) {
    if (obj != this.offset()) {
      throw new TypeError("FlatBuffers: struct must be serialized inline.");
    }
  }
  /**
   * Should not be creating any other object, string or vector
   * while an object is being constructed
   */
  notNested() {
    if (this.isNested) {
      throw new TypeError("FlatBuffers: object serialization must not be nested.");
    }
  }
  /**
   * Set the current vtable at `voffset` to the current location in the buffer.
   */
  slot(voffset) {
    if (this.vtable !== null)
      this.vtable[voffset] = this.offset();
  }
  /**
   * @returns Offset relative to the end of the buffer.
   */
  offset() {
    return this.bb.capacity() - this.space;
  }
  /**
   * Doubles the size of the backing ByteBuffer and copies the old data towards
   * the end of the new buffer (since we build the buffer backwards).
   *
   * @param bb The current buffer with the existing data
   * @returns A new byte buffer with the old data copied
   * to it. The data is located at the end of the buffer.
   *
   * uint8Array.set() formally takes {Array<number>|ArrayBufferView}, so to pass
   * it a uint8Array we need to suppress the type check:
   * @suppress {checkTypes}
   */
  static growByteBuffer(bb2) {
    const old_buf_size = bb2.capacity();
    if (old_buf_size & 3221225472) {
      throw new Error("FlatBuffers: cannot grow buffer beyond 2 gigabytes.");
    }
    const new_buf_size = old_buf_size << 1;
    const nbb = ByteBuffer.allocate(new_buf_size);
    nbb.setPosition(new_buf_size - old_buf_size);
    nbb.bytes().set(bb2.bytes(), new_buf_size - old_buf_size);
    return nbb;
  }
  /**
   * Adds on offset, relative to where it will be written.
   *
   * @param offset The offset to add.
   */
  addOffset(offset) {
    this.prep(SIZEOF_INT, 0);
    this.writeInt32(this.offset() - offset + SIZEOF_INT);
  }
  /**
   * Start encoding a new object in the buffer.  Users will not usually need to
   * call this directly. The FlatBuffers compiler will generate helper methods
   * that call this method internally.
   */
  startObject(numfields) {
    this.notNested();
    if (this.vtable == null) {
      this.vtable = [];
    }
    this.vtable_in_use = numfields;
    for (let i = 0; i < numfields; i++) {
      this.vtable[i] = 0;
    }
    this.isNested = true;
    this.object_start = this.offset();
  }
  /**
   * Finish off writing the object that is under construction.
   *
   * @returns The offset to the object inside `dataBuffer`
   */
  endObject() {
    if (this.vtable == null || !this.isNested) {
      throw new Error("FlatBuffers: endObject called without startObject");
    }
    this.addInt32(0);
    const vtableloc = this.offset();
    let i = this.vtable_in_use - 1;
    for (; i >= 0 && this.vtable[i] == 0; i--) {
    }
    const trimmed_size = i + 1;
    for (; i >= 0; i--) {
      this.addInt16(this.vtable[i] != 0 ? vtableloc - this.vtable[i] : 0);
    }
    const standard_fields = 2;
    this.addInt16(vtableloc - this.object_start);
    const len = (trimmed_size + standard_fields) * SIZEOF_SHORT;
    this.addInt16(len);
    let existing_vtable = 0;
    const vt1 = this.space;
    outer_loop: for (i = 0; i < this.vtables.length; i++) {
      const vt2 = this.bb.capacity() - this.vtables[i];
      if (len == this.bb.readInt16(vt2)) {
        for (let j = SIZEOF_SHORT; j < len; j += SIZEOF_SHORT) {
          if (this.bb.readInt16(vt1 + j) != this.bb.readInt16(vt2 + j)) {
            continue outer_loop;
          }
        }
        existing_vtable = this.vtables[i];
        break;
      }
    }
    if (existing_vtable) {
      this.space = this.bb.capacity() - vtableloc;
      this.bb.writeInt32(this.space, existing_vtable - vtableloc);
    } else {
      this.vtables.push(this.offset());
      this.bb.writeInt32(this.bb.capacity() - vtableloc, this.offset() - vtableloc);
    }
    this.isNested = false;
    return vtableloc;
  }
  /**
   * Finalize a buffer, poiting to the given `root_table`.
   */
  finish(root_table, opt_file_identifier, opt_size_prefix) {
    const size_prefix = opt_size_prefix ? SIZE_PREFIX_LENGTH : 0;
    if (opt_file_identifier) {
      const file_identifier = opt_file_identifier;
      this.prep(this.minalign, SIZEOF_INT + FILE_IDENTIFIER_LENGTH + size_prefix);
      if (file_identifier.length != FILE_IDENTIFIER_LENGTH) {
        throw new TypeError("FlatBuffers: file identifier must be length " + FILE_IDENTIFIER_LENGTH);
      }
      for (let i = FILE_IDENTIFIER_LENGTH - 1; i >= 0; i--) {
        this.writeInt8(file_identifier.charCodeAt(i));
      }
    }
    this.prep(this.minalign, SIZEOF_INT + size_prefix);
    this.addOffset(root_table);
    if (size_prefix) {
      this.addInt32(this.bb.capacity() - this.space);
    }
    this.bb.setPosition(this.space);
  }
  /**
   * Finalize a size prefixed buffer, pointing to the given `root_table`.
   */
  finishSizePrefixed(root_table, opt_file_identifier) {
    this.finish(root_table, opt_file_identifier, true);
  }
  /**
   * This checks a required field has been set in a given table that has
   * just been constructed.
   */
  requiredField(table, field) {
    const table_start = this.bb.capacity() - table;
    const vtable_start = table_start - this.bb.readInt32(table_start);
    const ok = field < this.bb.readInt16(vtable_start) && this.bb.readInt16(vtable_start + field) != 0;
    if (!ok) {
      throw new TypeError("FlatBuffers: field " + field + " must be set");
    }
  }
  /**
   * Start a new array/vector of objects.  Users usually will not call
   * this directly. The FlatBuffers compiler will create a start/end
   * method for vector types in generated code.
   *
   * @param elem_size The size of each element in the array
   * @param num_elems The number of elements in the array
   * @param alignment The alignment of the array
   */
  startVector(elem_size, num_elems, alignment) {
    this.notNested();
    this.vector_num_elems = num_elems;
    this.prep(SIZEOF_INT, elem_size * num_elems);
    this.prep(alignment, elem_size * num_elems);
  }
  /**
   * Finish off the creation of an array and all its elements. The array must be
   * created with `startVector`.
   *
   * @returns The offset at which the newly created array
   * starts.
   */
  endVector() {
    this.writeInt32(this.vector_num_elems);
    return this.offset();
  }
  /**
   * Encode the string `s` in the buffer using UTF-8. If the string passed has
   * already been seen, we return the offset of the already written string
   *
   * @param s The string to encode
   * @return The offset in the buffer where the encoded string starts
   */
  createSharedString(s) {
    if (!s) {
      return 0;
    }
    if (!this.string_maps) {
      this.string_maps = /* @__PURE__ */ new Map();
    }
    if (this.string_maps.has(s)) {
      return this.string_maps.get(s);
    }
    const offset = this.createString(s);
    this.string_maps.set(s, offset);
    return offset;
  }
  /**
   * Encode the string `s` in the buffer using UTF-8. If a Uint8Array is passed
   * instead of a string, it is assumed to contain valid UTF-8 encoded data.
   *
   * @param s The string to encode
   * @return The offset in the buffer where the encoded string starts
   */
  createString(s) {
    if (s === null || s === void 0) {
      return 0;
    }
    let utf8;
    if (s instanceof Uint8Array) {
      utf8 = s;
    } else {
      utf8 = this.text_encoder.encode(s);
    }
    this.addInt8(0);
    this.startVector(1, utf8.length, 1);
    this.bb.setPosition(this.space -= utf8.length);
    this.bb.bytes().set(utf8, this.space);
    return this.endVector();
  }
  /**
   * Create a byte vector.
   *
   * @param v The bytes to add
   * @returns The offset in the buffer where the byte vector starts
   */
  createByteVector(v) {
    if (v === null || v === void 0) {
      return 0;
    }
    this.startVector(1, v.length, 1);
    this.bb.setPosition(this.space -= v.length);
    this.bb.bytes().set(v, this.space);
    return this.endVector();
  }
  /**
   * A helper function to pack an object
   *
   * @returns offset of obj
   */
  createObjectOffset(obj) {
    if (obj === null) {
      return 0;
    }
    if (typeof obj === "string") {
      return this.createString(obj);
    } else {
      return obj.pack(this);
    }
  }
  /**
   * A helper function to pack a list of object
   *
   * @returns list of offsets of each non null object
   */
  createObjectOffsetList(list) {
    const ret = [];
    for (let i = 0; i < list.length; ++i) {
      const val = list[i];
      if (val !== null) {
        ret.push(this.createObjectOffset(val));
      } else {
        throw new TypeError("FlatBuffers: Argument for createObjectOffsetList cannot contain null.");
      }
    }
    return ret;
  }
  createStructOffsetList(list, startFunc) {
    startFunc(this, list.length);
    this.createObjectOffsetList(list.slice().reverse());
    return this.endVector();
  }
};

// src/gen/im/protocol/auth-request.ts
var AuthRequest = class _AuthRequest {
  bb = null;
  bb_pos = 0;
  __init(i, bb2) {
    this.bb_pos = i;
    this.bb = bb2;
    return this;
  }
  static getRootAsAuthRequest(bb2, obj) {
    return (obj || new _AuthRequest()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  static getSizePrefixedRootAsAuthRequest(bb2, obj) {
    bb2.setPosition(bb2.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _AuthRequest()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  token(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  deviceId(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  platform(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  static startAuthRequest(builder) {
    builder.startObject(3);
  }
  static addToken(builder, tokenOffset) {
    builder.addFieldOffset(0, tokenOffset, 0);
  }
  static addDeviceId(builder, deviceIdOffset) {
    builder.addFieldOffset(1, deviceIdOffset, 0);
  }
  static addPlatform(builder, platformOffset) {
    builder.addFieldOffset(2, platformOffset, 0);
  }
  static endAuthRequest(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createAuthRequest(builder, tokenOffset, deviceIdOffset, platformOffset) {
    _AuthRequest.startAuthRequest(builder);
    _AuthRequest.addToken(builder, tokenOffset);
    _AuthRequest.addDeviceId(builder, deviceIdOffset);
    _AuthRequest.addPlatform(builder, platformOffset);
    return _AuthRequest.endAuthRequest(builder);
  }
  unpack() {
    return new AuthRequestT(
      this.token(),
      this.deviceId(),
      this.platform()
    );
  }
  unpackTo(_o) {
    _o.token = this.token();
    _o.deviceId = this.deviceId();
    _o.platform = this.platform();
  }
};
var AuthRequestT = class {
  constructor(token = null, deviceId = null, platform = null) {
    this.token = token;
    this.deviceId = deviceId;
    this.platform = platform;
  }
  token;
  deviceId;
  platform;
  pack(builder) {
    const token = this.token !== null ? builder.createString(this.token) : 0;
    const deviceId = this.deviceId !== null ? builder.createString(this.deviceId) : 0;
    const platform = this.platform !== null ? builder.createString(this.platform) : 0;
    return AuthRequest.createAuthRequest(
      builder,
      token,
      deviceId,
      platform
    );
  }
};

// src/gen/im/protocol/auth-response.ts
var AuthResponse = class _AuthResponse {
  bb = null;
  bb_pos = 0;
  __init(i, bb2) {
    this.bb_pos = i;
    this.bb = bb2;
    return this;
  }
  static getRootAsAuthResponse(bb2, obj) {
    return (obj || new _AuthResponse()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  static getSizePrefixedRootAsAuthResponse(bb2, obj) {
    bb2.setPosition(bb2.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _AuthResponse()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  code() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readInt32(this.bb_pos + offset) : 0;
  }
  userId() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readInt64(this.bb_pos + offset) : BigInt("0");
  }
  message(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  connId() {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  nodeId(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 12);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  heartbeatIntervalMs() {
    const offset = this.bb.__offset(this.bb_pos, 14);
    return offset ? this.bb.readUint32(this.bb_pos + offset) : 0;
  }
  heartbeatTimeoutMs() {
    const offset = this.bb.__offset(this.bb_pos, 16);
    return offset ? this.bb.readUint32(this.bb_pos + offset) : 0;
  }
  static startAuthResponse(builder) {
    builder.startObject(7);
  }
  static addCode(builder, code) {
    builder.addFieldInt32(0, code, 0);
  }
  static addUserId(builder, userId) {
    builder.addFieldInt64(1, userId, BigInt("0"));
  }
  static addMessage(builder, messageOffset) {
    builder.addFieldOffset(2, messageOffset, 0);
  }
  static addConnId(builder, connId) {
    builder.addFieldInt64(3, connId, BigInt("0"));
  }
  static addNodeId(builder, nodeIdOffset) {
    builder.addFieldOffset(4, nodeIdOffset, 0);
  }
  static addHeartbeatIntervalMs(builder, heartbeatIntervalMs) {
    builder.addFieldInt32(5, heartbeatIntervalMs, 0);
  }
  static addHeartbeatTimeoutMs(builder, heartbeatTimeoutMs) {
    builder.addFieldInt32(6, heartbeatTimeoutMs, 0);
  }
  static endAuthResponse(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createAuthResponse(builder, code, userId, messageOffset, connId, nodeIdOffset, heartbeatIntervalMs, heartbeatTimeoutMs) {
    _AuthResponse.startAuthResponse(builder);
    _AuthResponse.addCode(builder, code);
    _AuthResponse.addUserId(builder, userId);
    _AuthResponse.addMessage(builder, messageOffset);
    _AuthResponse.addConnId(builder, connId);
    _AuthResponse.addNodeId(builder, nodeIdOffset);
    _AuthResponse.addHeartbeatIntervalMs(builder, heartbeatIntervalMs);
    _AuthResponse.addHeartbeatTimeoutMs(builder, heartbeatTimeoutMs);
    return _AuthResponse.endAuthResponse(builder);
  }
  unpack() {
    return new AuthResponseT(
      this.code(),
      this.userId(),
      this.message(),
      this.connId(),
      this.nodeId(),
      this.heartbeatIntervalMs(),
      this.heartbeatTimeoutMs()
    );
  }
  unpackTo(_o) {
    _o.code = this.code();
    _o.userId = this.userId();
    _o.message = this.message();
    _o.connId = this.connId();
    _o.nodeId = this.nodeId();
    _o.heartbeatIntervalMs = this.heartbeatIntervalMs();
    _o.heartbeatTimeoutMs = this.heartbeatTimeoutMs();
  }
};
var AuthResponseT = class {
  constructor(code = 0, userId = BigInt("0"), message = null, connId = BigInt("0"), nodeId = null, heartbeatIntervalMs = 0, heartbeatTimeoutMs = 0) {
    this.code = code;
    this.userId = userId;
    this.message = message;
    this.connId = connId;
    this.nodeId = nodeId;
    this.heartbeatIntervalMs = heartbeatIntervalMs;
    this.heartbeatTimeoutMs = heartbeatTimeoutMs;
  }
  code;
  userId;
  message;
  connId;
  nodeId;
  heartbeatIntervalMs;
  heartbeatTimeoutMs;
  pack(builder) {
    const message = this.message !== null ? builder.createString(this.message) : 0;
    const nodeId = this.nodeId !== null ? builder.createString(this.nodeId) : 0;
    return AuthResponse.createAuthResponse(
      builder,
      this.code,
      this.userId,
      message,
      this.connId,
      nodeId,
      this.heartbeatIntervalMs,
      this.heartbeatTimeoutMs
    );
  }
};

// src/gen/im/protocol/delivery.ts
var Delivery = /* @__PURE__ */ ((Delivery2) => {
  Delivery2[Delivery2["Direct"] = 0] = "Direct";
  Delivery2[Delivery2["Group"] = 1] = "Group";
  Delivery2[Delivery2["Broadcast"] = 2] = "Broadcast";
  return Delivery2;
})(Delivery || {});

// src/gen/im/protocol/chat-message.ts
var ChatMessage = class _ChatMessage {
  bb = null;
  bb_pos = 0;
  __init(i, bb2) {
    this.bb_pos = i;
    this.bb = bb2;
    return this;
  }
  static getRootAsChatMessage(bb2, obj) {
    return (obj || new _ChatMessage()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  static getSizePrefixedRootAsChatMessage(bb2, obj) {
    bb2.setPosition(bb2.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _ChatMessage()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  msgId(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  fromUser() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readInt64(this.bb_pos + offset) : BigInt("0");
  }
  toUser() {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.readInt64(this.bb_pos + offset) : BigInt("0");
  }
  content(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  contentType() {
    const offset = this.bb.__offset(this.bb_pos, 12);
    return offset ? this.bb.readInt32(this.bb_pos + offset) : 0;
  }
  timestamp() {
    const offset = this.bb.__offset(this.bb_pos, 14);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  seq() {
    const offset = this.bb.__offset(this.bb_pos, 16);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  delivery() {
    const offset = this.bb.__offset(this.bb_pos, 18);
    return offset ? this.bb.readInt8(this.bb_pos + offset) : 0 /* Direct */;
  }
  groupId() {
    const offset = this.bb.__offset(this.bb_pos, 20);
    return offset ? this.bb.readInt64(this.bb_pos + offset) : BigInt("0");
  }
  static startChatMessage(builder) {
    builder.startObject(9);
  }
  static addMsgId(builder, msgIdOffset) {
    builder.addFieldOffset(0, msgIdOffset, 0);
  }
  static addFromUser(builder, fromUser) {
    builder.addFieldInt64(1, fromUser, BigInt("0"));
  }
  static addToUser(builder, toUser) {
    builder.addFieldInt64(2, toUser, BigInt("0"));
  }
  static addContent(builder, contentOffset) {
    builder.addFieldOffset(3, contentOffset, 0);
  }
  static addContentType(builder, contentType) {
    builder.addFieldInt32(4, contentType, 0);
  }
  static addTimestamp(builder, timestamp) {
    builder.addFieldInt64(5, timestamp, BigInt("0"));
  }
  static addSeq(builder, seq) {
    builder.addFieldInt64(6, seq, BigInt("0"));
  }
  static addDelivery(builder, delivery) {
    builder.addFieldInt8(7, delivery, 0 /* Direct */);
  }
  static addGroupId(builder, groupId) {
    builder.addFieldInt64(8, groupId, BigInt("0"));
  }
  static endChatMessage(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createChatMessage(builder, msgIdOffset, fromUser, toUser, contentOffset, contentType, timestamp, seq, delivery, groupId) {
    _ChatMessage.startChatMessage(builder);
    _ChatMessage.addMsgId(builder, msgIdOffset);
    _ChatMessage.addFromUser(builder, fromUser);
    _ChatMessage.addToUser(builder, toUser);
    _ChatMessage.addContent(builder, contentOffset);
    _ChatMessage.addContentType(builder, contentType);
    _ChatMessage.addTimestamp(builder, timestamp);
    _ChatMessage.addSeq(builder, seq);
    _ChatMessage.addDelivery(builder, delivery);
    _ChatMessage.addGroupId(builder, groupId);
    return _ChatMessage.endChatMessage(builder);
  }
  unpack() {
    return new ChatMessageT(
      this.msgId(),
      this.fromUser(),
      this.toUser(),
      this.content(),
      this.contentType(),
      this.timestamp(),
      this.seq(),
      this.delivery(),
      this.groupId()
    );
  }
  unpackTo(_o) {
    _o.msgId = this.msgId();
    _o.fromUser = this.fromUser();
    _o.toUser = this.toUser();
    _o.content = this.content();
    _o.contentType = this.contentType();
    _o.timestamp = this.timestamp();
    _o.seq = this.seq();
    _o.delivery = this.delivery();
    _o.groupId = this.groupId();
  }
};
var ChatMessageT = class {
  constructor(msgId = null, fromUser = BigInt("0"), toUser = BigInt("0"), content = null, contentType = 0, timestamp = BigInt("0"), seq = BigInt("0"), delivery = 0 /* Direct */, groupId = BigInt("0")) {
    this.msgId = msgId;
    this.fromUser = fromUser;
    this.toUser = toUser;
    this.content = content;
    this.contentType = contentType;
    this.timestamp = timestamp;
    this.seq = seq;
    this.delivery = delivery;
    this.groupId = groupId;
  }
  msgId;
  fromUser;
  toUser;
  content;
  contentType;
  timestamp;
  seq;
  delivery;
  groupId;
  pack(builder) {
    const msgId = this.msgId !== null ? builder.createString(this.msgId) : 0;
    const content = this.content !== null ? builder.createString(this.content) : 0;
    return ChatMessage.createChatMessage(
      builder,
      msgId,
      this.fromUser,
      this.toUser,
      content,
      this.contentType,
      this.timestamp,
      this.seq,
      this.delivery,
      this.groupId
    );
  }
};

// src/gen/im/protocol/error.ts
var Error2 = class _Error {
  bb = null;
  bb_pos = 0;
  __init(i, bb2) {
    this.bb_pos = i;
    this.bb = bb2;
    return this;
  }
  static getRootAsError(bb2, obj) {
    return (obj || new _Error()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  static getSizePrefixedRootAsError(bb2, obj) {
    bb2.setPosition(bb2.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Error()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  code() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readInt32(this.bb_pos + offset) : 0;
  }
  message(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  static startError(builder) {
    builder.startObject(2);
  }
  static addCode(builder, code) {
    builder.addFieldInt32(0, code, 0);
  }
  static addMessage(builder, messageOffset) {
    builder.addFieldOffset(1, messageOffset, 0);
  }
  static endError(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createError(builder, code, messageOffset) {
    _Error.startError(builder);
    _Error.addCode(builder, code);
    _Error.addMessage(builder, messageOffset);
    return _Error.endError(builder);
  }
  unpack() {
    return new ErrorT(
      this.code(),
      this.message()
    );
  }
  unpackTo(_o) {
    _o.code = this.code();
    _o.message = this.message();
  }
};
var ErrorT = class {
  constructor(code = 0, message = null) {
    this.code = code;
    this.message = message;
  }
  code;
  message;
  pack(builder) {
    const message = this.message !== null ? builder.createString(this.message) : 0;
    return Error2.createError(
      builder,
      this.code,
      message
    );
  }
};

// src/gen/im/protocol/file-ack.ts
var FileAck = class _FileAck {
  bb = null;
  bb_pos = 0;
  __init(i, bb2) {
    this.bb_pos = i;
    this.bb = bb2;
    return this;
  }
  static getRootAsFileAck(bb2, obj) {
    return (obj || new _FileAck()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  static getSizePrefixedRootAsFileAck(bb2, obj) {
    bb2.setPosition(bb2.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _FileAck()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  code() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readInt32(this.bb_pos + offset) : 0;
  }
  message(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  fileId(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  msgId(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  serverSeq() {
    const offset = this.bb.__offset(this.bb_pos, 12);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  timestamp() {
    const offset = this.bb.__offset(this.bb_pos, 14);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  static startFileAck(builder) {
    builder.startObject(6);
  }
  static addCode(builder, code) {
    builder.addFieldInt32(0, code, 0);
  }
  static addMessage(builder, messageOffset) {
    builder.addFieldOffset(1, messageOffset, 0);
  }
  static addFileId(builder, fileIdOffset) {
    builder.addFieldOffset(2, fileIdOffset, 0);
  }
  static addMsgId(builder, msgIdOffset) {
    builder.addFieldOffset(3, msgIdOffset, 0);
  }
  static addServerSeq(builder, serverSeq) {
    builder.addFieldInt64(4, serverSeq, BigInt("0"));
  }
  static addTimestamp(builder, timestamp) {
    builder.addFieldInt64(5, timestamp, BigInt("0"));
  }
  static endFileAck(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createFileAck(builder, code, messageOffset, fileIdOffset, msgIdOffset, serverSeq, timestamp) {
    _FileAck.startFileAck(builder);
    _FileAck.addCode(builder, code);
    _FileAck.addMessage(builder, messageOffset);
    _FileAck.addFileId(builder, fileIdOffset);
    _FileAck.addMsgId(builder, msgIdOffset);
    _FileAck.addServerSeq(builder, serverSeq);
    _FileAck.addTimestamp(builder, timestamp);
    return _FileAck.endFileAck(builder);
  }
  unpack() {
    return new FileAckT(
      this.code(),
      this.message(),
      this.fileId(),
      this.msgId(),
      this.serverSeq(),
      this.timestamp()
    );
  }
  unpackTo(_o) {
    _o.code = this.code();
    _o.message = this.message();
    _o.fileId = this.fileId();
    _o.msgId = this.msgId();
    _o.serverSeq = this.serverSeq();
    _o.timestamp = this.timestamp();
  }
};
var FileAckT = class {
  constructor(code = 0, message = null, fileId = null, msgId = null, serverSeq = BigInt("0"), timestamp = BigInt("0")) {
    this.code = code;
    this.message = message;
    this.fileId = fileId;
    this.msgId = msgId;
    this.serverSeq = serverSeq;
    this.timestamp = timestamp;
  }
  code;
  message;
  fileId;
  msgId;
  serverSeq;
  timestamp;
  pack(builder) {
    const message = this.message !== null ? builder.createString(this.message) : 0;
    const fileId = this.fileId !== null ? builder.createString(this.fileId) : 0;
    const msgId = this.msgId !== null ? builder.createString(this.msgId) : 0;
    return FileAck.createFileAck(
      builder,
      this.code,
      message,
      fileId,
      msgId,
      this.serverSeq,
      this.timestamp
    );
  }
};

// src/gen/im/protocol/file-header.ts
var FileHeader = class _FileHeader {
  bb = null;
  bb_pos = 0;
  __init(i, bb2) {
    this.bb_pos = i;
    this.bb = bb2;
    return this;
  }
  static getRootAsFileHeader(bb2, obj) {
    return (obj || new _FileHeader()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  static getSizePrefixedRootAsFileHeader(bb2, obj) {
    bb2.setPosition(bb2.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _FileHeader()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  code() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readInt32(this.bb_pos + offset) : 0;
  }
  message(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  fileId(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  name(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  size() {
    const offset = this.bb.__offset(this.bb_pos, 12);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  mimeType(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 14);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  sha256(index) {
    const offset = this.bb.__offset(this.bb_pos, 16);
    return offset ? this.bb.readUint8(this.bb.__vector(this.bb_pos + offset) + index) : 0;
  }
  sha256Length() {
    const offset = this.bb.__offset(this.bb_pos, 16);
    return offset ? this.bb.__vector_len(this.bb_pos + offset) : 0;
  }
  sha256Array() {
    const offset = this.bb.__offset(this.bb_pos, 16);
    return offset ? new Uint8Array(this.bb.bytes().buffer, this.bb.bytes().byteOffset + this.bb.__vector(this.bb_pos + offset), this.bb.__vector_len(this.bb_pos + offset)) : null;
  }
  offset() {
    const offset = this.bb.__offset(this.bb_pos, 18);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  static startFileHeader(builder) {
    builder.startObject(8);
  }
  static addCode(builder, code) {
    builder.addFieldInt32(0, code, 0);
  }
  static addMessage(builder, messageOffset) {
    builder.addFieldOffset(1, messageOffset, 0);
  }
  static addFileId(builder, fileIdOffset) {
    builder.addFieldOffset(2, fileIdOffset, 0);
  }
  static addName(builder, nameOffset) {
    builder.addFieldOffset(3, nameOffset, 0);
  }
  static addSize(builder, size) {
    builder.addFieldInt64(4, size, BigInt("0"));
  }
  static addMimeType(builder, mimeTypeOffset) {
    builder.addFieldOffset(5, mimeTypeOffset, 0);
  }
  static addSha256(builder, sha256Offset) {
    builder.addFieldOffset(6, sha256Offset, 0);
  }
  static createSha256Vector(builder, data) {
    builder.startVector(1, data.length, 1);
    for (let i = data.length - 1; i >= 0; i--) {
      builder.addInt8(data[i]);
    }
    return builder.endVector();
  }
  static startSha256Vector(builder, numElems) {
    builder.startVector(1, numElems, 1);
  }
  static addOffset(builder, offset) {
    builder.addFieldInt64(7, offset, BigInt("0"));
  }
  static endFileHeader(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createFileHeader(builder, code, messageOffset, fileIdOffset, nameOffset, size, mimeTypeOffset, sha256Offset, offset) {
    _FileHeader.startFileHeader(builder);
    _FileHeader.addCode(builder, code);
    _FileHeader.addMessage(builder, messageOffset);
    _FileHeader.addFileId(builder, fileIdOffset);
    _FileHeader.addName(builder, nameOffset);
    _FileHeader.addSize(builder, size);
    _FileHeader.addMimeType(builder, mimeTypeOffset);
    _FileHeader.addSha256(builder, sha256Offset);
    _FileHeader.addOffset(builder, offset);
    return _FileHeader.endFileHeader(builder);
  }
  unpack() {
    return new FileHeaderT(
      this.code(),
      this.message(),
      this.fileId(),
      this.name(),
      this.size(),
      this.mimeType(),
      this.bb.createScalarList(this.sha256.bind(this), this.sha256Length()),
      this.offset()
    );
  }
  unpackTo(_o) {
    _o.code = this.code();
    _o.message = this.message();
    _o.fileId = this.fileId();
    _o.name = this.name();
    _o.size = this.size();
    _o.mimeType = this.mimeType();
    _o.sha256 = this.bb.createScalarList(this.sha256.bind(this), this.sha256Length());
    _o.offset = this.offset();
  }
};
var FileHeaderT = class {
  constructor(code = 0, message = null, fileId = null, name = null, size = BigInt("0"), mimeType = null, sha2562 = [], offset = BigInt("0")) {
    this.code = code;
    this.message = message;
    this.fileId = fileId;
    this.name = name;
    this.size = size;
    this.mimeType = mimeType;
    this.sha256 = sha2562;
    this.offset = offset;
  }
  code;
  message;
  fileId;
  name;
  size;
  mimeType;
  sha256;
  offset;
  pack(builder) {
    const message = this.message !== null ? builder.createString(this.message) : 0;
    const fileId = this.fileId !== null ? builder.createString(this.fileId) : 0;
    const name = this.name !== null ? builder.createString(this.name) : 0;
    const mimeType = this.mimeType !== null ? builder.createString(this.mimeType) : 0;
    const sha2562 = FileHeader.createSha256Vector(builder, this.sha256);
    return FileHeader.createFileHeader(
      builder,
      this.code,
      message,
      fileId,
      name,
      this.size,
      mimeType,
      sha2562,
      this.offset
    );
  }
};

// src/gen/im/protocol/file-offer.ts
var FileOffer = class _FileOffer {
  bb = null;
  bb_pos = 0;
  __init(i, bb2) {
    this.bb_pos = i;
    this.bb = bb2;
    return this;
  }
  static getRootAsFileOffer(bb2, obj) {
    return (obj || new _FileOffer()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  static getSizePrefixedRootAsFileOffer(bb2, obj) {
    bb2.setPosition(bb2.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _FileOffer()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  msgId(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  toUser() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readInt64(this.bb_pos + offset) : BigInt("0");
  }
  name(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  size() {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  mimeType(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 12);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  sha256(index) {
    const offset = this.bb.__offset(this.bb_pos, 14);
    return offset ? this.bb.readUint8(this.bb.__vector(this.bb_pos + offset) + index) : 0;
  }
  sha256Length() {
    const offset = this.bb.__offset(this.bb_pos, 14);
    return offset ? this.bb.__vector_len(this.bb_pos + offset) : 0;
  }
  sha256Array() {
    const offset = this.bb.__offset(this.bb_pos, 14);
    return offset ? new Uint8Array(this.bb.bytes().buffer, this.bb.bytes().byteOffset + this.bb.__vector(this.bb_pos + offset), this.bb.__vector_len(this.bb_pos + offset)) : null;
  }
  static startFileOffer(builder) {
    builder.startObject(6);
  }
  static addMsgId(builder, msgIdOffset) {
    builder.addFieldOffset(0, msgIdOffset, 0);
  }
  static addToUser(builder, toUser) {
    builder.addFieldInt64(1, toUser, BigInt("0"));
  }
  static addName(builder, nameOffset) {
    builder.addFieldOffset(2, nameOffset, 0);
  }
  static addSize(builder, size) {
    builder.addFieldInt64(3, size, BigInt("0"));
  }
  static addMimeType(builder, mimeTypeOffset) {
    builder.addFieldOffset(4, mimeTypeOffset, 0);
  }
  static addSha256(builder, sha256Offset) {
    builder.addFieldOffset(5, sha256Offset, 0);
  }
  static createSha256Vector(builder, data) {
    builder.startVector(1, data.length, 1);
    for (let i = data.length - 1; i >= 0; i--) {
      builder.addInt8(data[i]);
    }
    return builder.endVector();
  }
  static startSha256Vector(builder, numElems) {
    builder.startVector(1, numElems, 1);
  }
  static endFileOffer(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createFileOffer(builder, msgIdOffset, toUser, nameOffset, size, mimeTypeOffset, sha256Offset) {
    _FileOffer.startFileOffer(builder);
    _FileOffer.addMsgId(builder, msgIdOffset);
    _FileOffer.addToUser(builder, toUser);
    _FileOffer.addName(builder, nameOffset);
    _FileOffer.addSize(builder, size);
    _FileOffer.addMimeType(builder, mimeTypeOffset);
    _FileOffer.addSha256(builder, sha256Offset);
    return _FileOffer.endFileOffer(builder);
  }
  unpack() {
    return new FileOfferT(
      this.msgId(),
      this.toUser(),
      this.name(),
      this.size(),
      this.mimeType(),
      this.bb.createScalarList(this.sha256.bind(this), this.sha256Length())
    );
  }
  unpackTo(_o) {
    _o.msgId = this.msgId();
    _o.toUser = this.toUser();
    _o.name = this.name();
    _o.size = this.size();
    _o.mimeType = this.mimeType();
    _o.sha256 = this.bb.createScalarList(this.sha256.bind(this), this.sha256Length());
  }
};
var FileOfferT = class {
  constructor(msgId = null, toUser = BigInt("0"), name = null, size = BigInt("0"), mimeType = null, sha2562 = []) {
    this.msgId = msgId;
    this.toUser = toUser;
    this.name = name;
    this.size = size;
    this.mimeType = mimeType;
    this.sha256 = sha2562;
  }
  msgId;
  toUser;
  name;
  size;
  mimeType;
  sha256;
  pack(builder) {
    const msgId = this.msgId !== null ? builder.createString(this.msgId) : 0;
    const name = this.name !== null ? builder.createString(this.name) : 0;
    const mimeType = this.mimeType !== null ? builder.createString(this.mimeType) : 0;
    const sha2562 = FileOffer.createSha256Vector(builder, this.sha256);
    return FileOffer.createFileOffer(
      builder,
      msgId,
      this.toUser,
      name,
      this.size,
      mimeType,
      sha2562
    );
  }
};

// src/gen/im/protocol/file-request.ts
var FileRequest = class _FileRequest {
  bb = null;
  bb_pos = 0;
  __init(i, bb2) {
    this.bb_pos = i;
    this.bb = bb2;
    return this;
  }
  static getRootAsFileRequest(bb2, obj) {
    return (obj || new _FileRequest()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  static getSizePrefixedRootAsFileRequest(bb2, obj) {
    bb2.setPosition(bb2.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _FileRequest()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  fileId(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  offset() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  static startFileRequest(builder) {
    builder.startObject(2);
  }
  static addFileId(builder, fileIdOffset) {
    builder.addFieldOffset(0, fileIdOffset, 0);
  }
  static addOffset(builder, offset) {
    builder.addFieldInt64(1, offset, BigInt("0"));
  }
  static endFileRequest(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createFileRequest(builder, fileIdOffset, offset) {
    _FileRequest.startFileRequest(builder);
    _FileRequest.addFileId(builder, fileIdOffset);
    _FileRequest.addOffset(builder, offset);
    return _FileRequest.endFileRequest(builder);
  }
  unpack() {
    return new FileRequestT(
      this.fileId(),
      this.offset()
    );
  }
  unpackTo(_o) {
    _o.fileId = this.fileId();
    _o.offset = this.offset();
  }
};
var FileRequestT = class {
  constructor(fileId = null, offset = BigInt("0")) {
    this.fileId = fileId;
    this.offset = offset;
  }
  fileId;
  offset;
  pack(builder) {
    const fileId = this.fileId !== null ? builder.createString(this.fileId) : 0;
    return FileRequest.createFileRequest(
      builder,
      fileId,
      this.offset
    );
  }
};

// src/gen/im/protocol/kick.ts
var Kick = class _Kick {
  bb = null;
  bb_pos = 0;
  __init(i, bb2) {
    this.bb_pos = i;
    this.bb = bb2;
    return this;
  }
  static getRootAsKick(bb2, obj) {
    return (obj || new _Kick()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  static getSizePrefixedRootAsKick(bb2, obj) {
    bb2.setPosition(bb2.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Kick()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  code() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readInt32(this.bb_pos + offset) : 0;
  }
  reason(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  static startKick(builder) {
    builder.startObject(2);
  }
  static addCode(builder, code) {
    builder.addFieldInt32(0, code, 0);
  }
  static addReason(builder, reasonOffset) {
    builder.addFieldOffset(1, reasonOffset, 0);
  }
  static endKick(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createKick(builder, code, reasonOffset) {
    _Kick.startKick(builder);
    _Kick.addCode(builder, code);
    _Kick.addReason(builder, reasonOffset);
    return _Kick.endKick(builder);
  }
  unpack() {
    return new KickT(
      this.code(),
      this.reason()
    );
  }
  unpackTo(_o) {
    _o.code = this.code();
    _o.reason = this.reason();
  }
};
var KickT = class {
  constructor(code = 0, reason = null) {
    this.code = code;
    this.reason = reason;
  }
  code;
  reason;
  pack(builder) {
    const reason = this.reason !== null ? builder.createString(this.reason) : 0;
    return Kick.createKick(
      builder,
      this.code,
      reason
    );
  }
};

// src/gen/im/protocol/message-ack.ts
var MessageAck = class _MessageAck {
  bb = null;
  bb_pos = 0;
  __init(i, bb2) {
    this.bb_pos = i;
    this.bb = bb2;
    return this;
  }
  static getRootAsMessageAck(bb2, obj) {
    return (obj || new _MessageAck()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  static getSizePrefixedRootAsMessageAck(bb2, obj) {
    bb2.setPosition(bb2.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _MessageAck()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  msgId(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  code() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readInt32(this.bb_pos + offset) : 0;
  }
  serverSeq() {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  timestamp() {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  duplicate() {
    const offset = this.bb.__offset(this.bb_pos, 12);
    return offset ? !!this.bb.readInt8(this.bb_pos + offset) : false;
  }
  static startMessageAck(builder) {
    builder.startObject(5);
  }
  static addMsgId(builder, msgIdOffset) {
    builder.addFieldOffset(0, msgIdOffset, 0);
  }
  static addCode(builder, code) {
    builder.addFieldInt32(1, code, 0);
  }
  static addServerSeq(builder, serverSeq) {
    builder.addFieldInt64(2, serverSeq, BigInt("0"));
  }
  static addTimestamp(builder, timestamp) {
    builder.addFieldInt64(3, timestamp, BigInt("0"));
  }
  static addDuplicate(builder, duplicate) {
    builder.addFieldInt8(4, +duplicate, 0);
  }
  static endMessageAck(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createMessageAck(builder, msgIdOffset, code, serverSeq, timestamp, duplicate) {
    _MessageAck.startMessageAck(builder);
    _MessageAck.addMsgId(builder, msgIdOffset);
    _MessageAck.addCode(builder, code);
    _MessageAck.addServerSeq(builder, serverSeq);
    _MessageAck.addTimestamp(builder, timestamp);
    _MessageAck.addDuplicate(builder, duplicate);
    return _MessageAck.endMessageAck(builder);
  }
  unpack() {
    return new MessageAckT(
      this.msgId(),
      this.code(),
      this.serverSeq(),
      this.timestamp(),
      this.duplicate()
    );
  }
  unpackTo(_o) {
    _o.msgId = this.msgId();
    _o.code = this.code();
    _o.serverSeq = this.serverSeq();
    _o.timestamp = this.timestamp();
    _o.duplicate = this.duplicate();
  }
};
var MessageAckT = class {
  constructor(msgId = null, code = 0, serverSeq = BigInt("0"), timestamp = BigInt("0"), duplicate = false) {
    this.msgId = msgId;
    this.code = code;
    this.serverSeq = serverSeq;
    this.timestamp = timestamp;
    this.duplicate = duplicate;
  }
  msgId;
  code;
  serverSeq;
  timestamp;
  duplicate;
  pack(builder) {
    const msgId = this.msgId !== null ? builder.createString(this.msgId) : 0;
    return MessageAck.createMessageAck(
      builder,
      msgId,
      this.code,
      this.serverSeq,
      this.timestamp,
      this.duplicate
    );
  }
};

// src/gen/im/protocol/msg-type.ts
var MsgType = /* @__PURE__ */ ((MsgType2) => {
  MsgType2[MsgType2["Heartbeat"] = 0] = "Heartbeat";
  MsgType2[MsgType2["Auth"] = 1] = "Auth";
  MsgType2[MsgType2["AuthAck"] = 2] = "AuthAck";
  MsgType2[MsgType2["Message"] = 10] = "Message";
  MsgType2[MsgType2["MessageAck"] = 11] = "MessageAck";
  MsgType2[MsgType2["Sync"] = 20] = "Sync";
  MsgType2[MsgType2["SyncAck"] = 21] = "SyncAck";
  MsgType2[MsgType2["Kick"] = 30] = "Kick";
  MsgType2[MsgType2["Error"] = 31] = "Error";
  MsgType2[MsgType2["Notice"] = 32] = "Notice";
  MsgType2[MsgType2["FileOffer"] = 40] = "FileOffer";
  MsgType2[MsgType2["FileAck"] = 41] = "FileAck";
  MsgType2[MsgType2["FileRequest"] = 42] = "FileRequest";
  MsgType2[MsgType2["FileHeader"] = 43] = "FileHeader";
  return MsgType2;
})(MsgType || {});

// src/gen/im/protocol/notice-kind.ts
var NoticeKind = /* @__PURE__ */ ((NoticeKind2) => {
  NoticeKind2[NoticeKind2["Info"] = 0] = "Info";
  NoticeKind2[NoticeKind2["Drain"] = 1] = "Drain";
  return NoticeKind2;
})(NoticeKind || {});

// src/gen/im/protocol/notice.ts
var Notice = class _Notice {
  bb = null;
  bb_pos = 0;
  __init(i, bb2) {
    this.bb_pos = i;
    this.bb = bb2;
    return this;
  }
  static getRootAsNotice(bb2, obj) {
    return (obj || new _Notice()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  static getSizePrefixedRootAsNotice(bb2, obj) {
    bb2.setPosition(bb2.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Notice()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  kind() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readInt16(this.bb_pos + offset) : 0 /* Info */;
  }
  code() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readInt32(this.bb_pos + offset) : 0;
  }
  message(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  reconnectAfterMs() {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? this.bb.readUint32(this.bb_pos + offset) : 0;
  }
  static startNotice(builder) {
    builder.startObject(4);
  }
  static addKind(builder, kind) {
    builder.addFieldInt16(0, kind, 0 /* Info */);
  }
  static addCode(builder, code) {
    builder.addFieldInt32(1, code, 0);
  }
  static addMessage(builder, messageOffset) {
    builder.addFieldOffset(2, messageOffset, 0);
  }
  static addReconnectAfterMs(builder, reconnectAfterMs) {
    builder.addFieldInt32(3, reconnectAfterMs, 0);
  }
  static endNotice(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createNotice(builder, kind, code, messageOffset, reconnectAfterMs) {
    _Notice.startNotice(builder);
    _Notice.addKind(builder, kind);
    _Notice.addCode(builder, code);
    _Notice.addMessage(builder, messageOffset);
    _Notice.addReconnectAfterMs(builder, reconnectAfterMs);
    return _Notice.endNotice(builder);
  }
  unpack() {
    return new NoticeT(
      this.kind(),
      this.code(),
      this.message(),
      this.reconnectAfterMs()
    );
  }
  unpackTo(_o) {
    _o.kind = this.kind();
    _o.code = this.code();
    _o.message = this.message();
    _o.reconnectAfterMs = this.reconnectAfterMs();
  }
};
var NoticeT = class {
  constructor(kind = 0 /* Info */, code = 0, message = null, reconnectAfterMs = 0) {
    this.kind = kind;
    this.code = code;
    this.message = message;
    this.reconnectAfterMs = reconnectAfterMs;
  }
  kind;
  code;
  message;
  reconnectAfterMs;
  pack(builder) {
    const message = this.message !== null ? builder.createString(this.message) : 0;
    return Notice.createNotice(
      builder,
      this.kind,
      this.code,
      message,
      this.reconnectAfterMs
    );
  }
};

// src/gen/im/protocol/packet.ts
var Packet = class _Packet {
  bb = null;
  bb_pos = 0;
  __init(i, bb2) {
    this.bb_pos = i;
    this.bb = bb2;
    return this;
  }
  static getRootAsPacket(bb2, obj) {
    return (obj || new _Packet()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  static getSizePrefixedRootAsPacket(bb2, obj) {
    bb2.setPosition(bb2.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Packet()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  seq() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  msgType() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readInt16(this.bb_pos + offset) : 0 /* Heartbeat */;
  }
  timestamp() {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  payload(index) {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? this.bb.readUint8(this.bb.__vector(this.bb_pos + offset) + index) : 0;
  }
  payloadLength() {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? this.bb.__vector_len(this.bb_pos + offset) : 0;
  }
  payloadArray() {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? new Uint8Array(this.bb.bytes().buffer, this.bb.bytes().byteOffset + this.bb.__vector(this.bb_pos + offset), this.bb.__vector_len(this.bb_pos + offset)) : null;
  }
  static startPacket(builder) {
    builder.startObject(4);
  }
  static addSeq(builder, seq) {
    builder.addFieldInt64(0, seq, BigInt("0"));
  }
  static addMsgType(builder, msgType) {
    builder.addFieldInt16(1, msgType, 0 /* Heartbeat */);
  }
  static addTimestamp(builder, timestamp) {
    builder.addFieldInt64(2, timestamp, BigInt("0"));
  }
  static addPayload(builder, payloadOffset) {
    builder.addFieldOffset(3, payloadOffset, 0);
  }
  static createPayloadVector(builder, data) {
    builder.startVector(1, data.length, 1);
    for (let i = data.length - 1; i >= 0; i--) {
      builder.addInt8(data[i]);
    }
    return builder.endVector();
  }
  static startPayloadVector(builder, numElems) {
    builder.startVector(1, numElems, 1);
  }
  static endPacket(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static finishPacketBuffer(builder, offset) {
    builder.finish(offset);
  }
  static finishSizePrefixedPacketBuffer(builder, offset) {
    builder.finish(offset, void 0, true);
  }
  static createPacket(builder, seq, msgType, timestamp, payloadOffset) {
    _Packet.startPacket(builder);
    _Packet.addSeq(builder, seq);
    _Packet.addMsgType(builder, msgType);
    _Packet.addTimestamp(builder, timestamp);
    _Packet.addPayload(builder, payloadOffset);
    return _Packet.endPacket(builder);
  }
  unpack() {
    return new PacketT(
      this.seq(),
      this.msgType(),
      this.timestamp(),
      this.bb.createScalarList(this.payload.bind(this), this.payloadLength())
    );
  }
  unpackTo(_o) {
    _o.seq = this.seq();
    _o.msgType = this.msgType();
    _o.timestamp = this.timestamp();
    _o.payload = this.bb.createScalarList(this.payload.bind(this), this.payloadLength());
  }
};
var PacketT = class {
  constructor(seq = BigInt("0"), msgType = 0 /* Heartbeat */, timestamp = BigInt("0"), payload = []) {
    this.seq = seq;
    this.msgType = msgType;
    this.timestamp = timestamp;
    this.payload = payload;
  }
  seq;
  msgType;
  timestamp;
  payload;
  pack(builder) {
    const payload = Packet.createPayloadVector(builder, this.payload);
    return Packet.createPacket(
      builder,
      this.seq,
      this.msgType,
      this.timestamp,
      payload
    );
  }
};

// src/gen/im/protocol/sync-request.ts
var SyncRequest = class _SyncRequest {
  bb = null;
  bb_pos = 0;
  __init(i, bb2) {
    this.bb_pos = i;
    this.bb = bb2;
    return this;
  }
  static getRootAsSyncRequest(bb2, obj) {
    return (obj || new _SyncRequest()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  static getSizePrefixedRootAsSyncRequest(bb2, obj) {
    bb2.setPosition(bb2.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _SyncRequest()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  sinceSeq() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  limit() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readUint32(this.bb_pos + offset) : 0;
  }
  static startSyncRequest(builder) {
    builder.startObject(2);
  }
  static addSinceSeq(builder, sinceSeq) {
    builder.addFieldInt64(0, sinceSeq, BigInt("0"));
  }
  static addLimit(builder, limit) {
    builder.addFieldInt32(1, limit, 0);
  }
  static endSyncRequest(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createSyncRequest(builder, sinceSeq, limit) {
    _SyncRequest.startSyncRequest(builder);
    _SyncRequest.addSinceSeq(builder, sinceSeq);
    _SyncRequest.addLimit(builder, limit);
    return _SyncRequest.endSyncRequest(builder);
  }
  unpack() {
    return new SyncRequestT(
      this.sinceSeq(),
      this.limit()
    );
  }
  unpackTo(_o) {
    _o.sinceSeq = this.sinceSeq();
    _o.limit = this.limit();
  }
};
var SyncRequestT = class {
  constructor(sinceSeq = BigInt("0"), limit = 0) {
    this.sinceSeq = sinceSeq;
    this.limit = limit;
  }
  sinceSeq;
  limit;
  pack(builder) {
    return SyncRequest.createSyncRequest(
      builder,
      this.sinceSeq,
      this.limit
    );
  }
};

// src/gen/im/protocol/sync-response.ts
var SyncResponse = class _SyncResponse {
  bb = null;
  bb_pos = 0;
  __init(i, bb2) {
    this.bb_pos = i;
    this.bb = bb2;
    return this;
  }
  static getRootAsSyncResponse(bb2, obj) {
    return (obj || new _SyncResponse()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  static getSizePrefixedRootAsSyncResponse(bb2, obj) {
    bb2.setPosition(bb2.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _SyncResponse()).__init(bb2.readInt32(bb2.position()) + bb2.position(), bb2);
  }
  code() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readInt32(this.bb_pos + offset) : 0;
  }
  messages(index, obj) {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? (obj || new ChatMessage()).__init(this.bb.__indirect(this.bb.__vector(this.bb_pos + offset) + index * 4), this.bb) : null;
  }
  messagesLength() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.__vector_len(this.bb_pos + offset) : 0;
  }
  maxSeq() {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  hasMore() {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? !!this.bb.readInt8(this.bb_pos + offset) : false;
  }
  static startSyncResponse(builder) {
    builder.startObject(4);
  }
  static addCode(builder, code) {
    builder.addFieldInt32(0, code, 0);
  }
  static addMessages(builder, messagesOffset) {
    builder.addFieldOffset(1, messagesOffset, 0);
  }
  static createMessagesVector(builder, data) {
    builder.startVector(4, data.length, 4);
    for (let i = data.length - 1; i >= 0; i--) {
      builder.addOffset(data[i]);
    }
    return builder.endVector();
  }
  static startMessagesVector(builder, numElems) {
    builder.startVector(4, numElems, 4);
  }
  static addMaxSeq(builder, maxSeq) {
    builder.addFieldInt64(2, maxSeq, BigInt("0"));
  }
  static addHasMore(builder, hasMore) {
    builder.addFieldInt8(3, +hasMore, 0);
  }
  static endSyncResponse(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createSyncResponse(builder, code, messagesOffset, maxSeq, hasMore) {
    _SyncResponse.startSyncResponse(builder);
    _SyncResponse.addCode(builder, code);
    _SyncResponse.addMessages(builder, messagesOffset);
    _SyncResponse.addMaxSeq(builder, maxSeq);
    _SyncResponse.addHasMore(builder, hasMore);
    return _SyncResponse.endSyncResponse(builder);
  }
  unpack() {
    return new SyncResponseT(
      this.code(),
      this.bb.createObjList(this.messages.bind(this), this.messagesLength()),
      this.maxSeq(),
      this.hasMore()
    );
  }
  unpackTo(_o) {
    _o.code = this.code();
    _o.messages = this.bb.createObjList(this.messages.bind(this), this.messagesLength());
    _o.maxSeq = this.maxSeq();
    _o.hasMore = this.hasMore();
  }
};
var SyncResponseT = class {
  constructor(code = 0, messages = [], maxSeq = BigInt("0"), hasMore = false) {
    this.code = code;
    this.messages = messages;
    this.maxSeq = maxSeq;
    this.hasMore = hasMore;
  }
  code;
  messages;
  maxSeq;
  hasMore;
  pack(builder) {
    const messages = SyncResponse.createMessagesVector(builder, builder.createObjectOffsetList(this.messages));
    return SyncResponse.createSyncResponse(
      builder,
      this.code,
      messages,
      this.maxSeq,
      this.hasMore
    );
  }
};

// src/codec.ts
var HEADER_SIZE = 6;
var MAX_FRAME_SIZE = 65536;
var FrameError = class extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
  code;
};
var FrameDecoder = class {
  constructor(maxFrameSize = MAX_FRAME_SIZE) {
    this.maxFrameSize = maxFrameSize;
  }
  maxFrameSize;
  buf = new Uint8Array(0);
  get buffered() {
    return this.buf.length;
  }
  push(chunk) {
    if (this.buf.length === 0) {
      this.buf = chunk.slice();
    } else {
      const joined = new Uint8Array(this.buf.length + chunk.length);
      joined.set(this.buf, 0);
      joined.set(chunk, this.buf.length);
      this.buf = joined;
    }
    const frames = [];
    let pos = 0;
    for (; ; ) {
      const taken = takeFrame(this.buf, pos, this.maxFrameSize);
      if (!taken) break;
      frames.push(taken.frame);
      pos = taken.end;
    }
    this.buf = pos === 0 ? this.buf : this.buf.slice(pos);
    return frames;
  }
};
function takeFrame(buf, pos = 0, maxFrameSize = MAX_FRAME_SIZE) {
  if (buf.length - pos < 4) return null;
  const view = new DataView(buf.buffer, buf.byteOffset + pos);
  const length = view.getUint32(0, false);
  if (length > maxFrameSize) throw new FrameError(4005, `frame length ${length} too large`);
  if (length < 2) throw new FrameError(4004, `frame length ${length} < 2`);
  if (buf.length - pos < 4 + length) return null;
  const type = view.getUint16(4, false);
  const body = buf.slice(pos + HEADER_SIZE, pos + 4 + length);
  return { frame: decodeBody(type, body), end: pos + 4 + length };
}
function decodeBody(headerType, body) {
  if (body.length < 8) throw new FrameError(4004, "body under 8 bytes");
  const packet = Packet.getRootAsPacket(new ByteBuffer(body));
  const type = packet.msgType() & 65535;
  if (type !== headerType) throw new FrameError(4004, `header type ${headerType} != packet type ${type}`);
  const payload = packet.payloadArray();
  return {
    type,
    seq: Number(packet.seq()),
    timestamp: Number(packet.timestamp()),
    payload: payload ? payload.slice() : new Uint8Array(0)
  };
}
function encodeFrame(type, seq, payload, timestamp = 0) {
  const b = new Builder(64 + (payload?.length ?? 0));
  const payloadOffset = payload && payload.length ? Packet.createPayloadVector(b, payload) : 0;
  Packet.startPacket(b);
  Packet.addSeq(b, BigInt(seq));
  Packet.addMsgType(b, type);
  Packet.addTimestamp(b, BigInt(timestamp));
  if (payloadOffset) Packet.addPayload(b, payloadOffset);
  b.finish(Packet.endPacket(b));
  const body = b.asUint8Array();
  const out = new Uint8Array(HEADER_SIZE + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 2 + body.length, false);
  view.setUint16(4, type, false);
  out.set(body, HEADER_SIZE);
  return out;
}
var bb = (p) => new ByteBuffer(p);
function finish(b, root) {
  b.finish(root);
  return b.asUint8Array();
}
function encodeAuth(token, deviceId, platform) {
  const b = new Builder(256);
  const t = b.createString(token), d = b.createString(deviceId), p = b.createString(platform);
  return finish(b, AuthRequest.createAuthRequest(b, t, d, p));
}
function encodeChat(msgId, toUser, content, contentType = 0) {
  const b = new Builder(128 + content.length * 3);
  const id = b.createString(msgId), c = b.createString(content);
  ChatMessage.startChatMessage(b);
  ChatMessage.addMsgId(b, id);
  ChatMessage.addToUser(b, BigInt(toUser));
  ChatMessage.addContent(b, c);
  if (contentType) ChatMessage.addContentType(b, contentType);
  return finish(b, ChatMessage.endChatMessage(b));
}
function encodeSync(sinceSeq, limit = 0) {
  const b = new Builder(32);
  return finish(b, SyncRequest.createSyncRequest(b, BigInt(sinceSeq), limit));
}
function needTable(p) {
  if (p.length < 4) throw new FrameError(4004, "payload shorter than 4 bytes");
}
function decodeAuthResponse(p) {
  needTable(p);
  const r = AuthResponse.getRootAsAuthResponse(bb(p));
  return {
    code: r.code(),
    userId: Number(r.userId()),
    message: r.message() ?? "",
    connId: r.connId().toString(),
    nodeId: r.nodeId() ?? "",
    heartbeatIntervalMs: r.heartbeatIntervalMs(),
    heartbeatTimeoutMs: r.heartbeatTimeoutMs()
  };
}
function chatFrom(m) {
  return {
    msgId: m.msgId() ?? "",
    fromUser: Number(m.fromUser()),
    toUser: Number(m.toUser()),
    content: m.content() ?? "",
    contentType: m.contentType(),
    timestamp: Number(m.timestamp()),
    seq: Number(m.seq()),
    delivery: m.delivery(),
    groupId: Number(m.groupId())
  };
}
function decodeChat(p) {
  needTable(p);
  return chatFrom(ChatMessage.getRootAsChatMessage(bb(p)));
}
function decodeMessageAck(p) {
  needTable(p);
  const a = MessageAck.getRootAsMessageAck(bb(p));
  return { msgId: a.msgId() ?? "", code: a.code(), serverSeq: Number(a.serverSeq()), timestamp: Number(a.timestamp()), duplicate: a.duplicate() };
}
function decodeSyncResponse(p) {
  needTable(p);
  const r = SyncResponse.getRootAsSyncResponse(bb(p));
  const messages = [];
  for (let i = 0; i < r.messagesLength(); i++) messages.push(chatFrom(r.messages(i)));
  return { code: r.code(), messages, maxSeq: Number(r.maxSeq()), hasMore: r.hasMore() };
}
function decodeKick(p) {
  needTable(p);
  const k = Kick.getRootAsKick(bb(p));
  return { code: k.code(), reason: k.reason() ?? "" };
}
function decodeError(p) {
  needTable(p);
  const e = Error2.getRootAsError(bb(p));
  return { code: e.code(), message: e.message() ?? "" };
}
function decodeNotice(p) {
  needTable(p);
  const n = Notice.getRootAsNotice(bb(p));
  return { kind: n.kind(), code: n.code(), message: n.message() ?? "", reconnectAfterMs: n.reconnectAfterMs() };
}
var bytesOf = (a) => a ? a.slice() : new Uint8Array(0);
var optString = (b, s) => s ? b.createString(s) : 0;
function encodeFileOffer(o) {
  const b = new Builder(128 + o.name.length * 3 + o.msgId.length + o.mimeType.length);
  const id = b.createString(o.msgId), name = b.createString(o.name), mime = optString(b, o.mimeType);
  const sha = FileOffer.createSha256Vector(b, o.sha256);
  FileOffer.startFileOffer(b);
  FileOffer.addMsgId(b, id);
  FileOffer.addToUser(b, BigInt(o.toUser));
  FileOffer.addName(b, name);
  FileOffer.addSize(b, BigInt(o.size));
  if (mime) FileOffer.addMimeType(b, mime);
  FileOffer.addSha256(b, sha);
  return finish(b, FileOffer.endFileOffer(b));
}
function decodeFileOffer(p) {
  needTable(p);
  const o = FileOffer.getRootAsFileOffer(bb(p));
  return {
    msgId: o.msgId() ?? "",
    toUser: Number(o.toUser()),
    name: o.name() ?? "",
    size: Number(o.size()),
    mimeType: o.mimeType() ?? "",
    sha256: bytesOf(o.sha256Array())
  };
}
function encodeFileAck(a) {
  const b = new Builder(128);
  const message = optString(b, a.message), fileId = optString(b, a.fileId), msgId = optString(b, a.msgId);
  return finish(b, FileAck.createFileAck(
    b,
    a.code ?? 0,
    message,
    fileId,
    msgId,
    BigInt(a.serverSeq ?? 0),
    BigInt(a.timestamp ?? 0)
  ));
}
function decodeFileAck(p) {
  needTable(p);
  const a = FileAck.getRootAsFileAck(bb(p));
  return {
    code: a.code(),
    message: a.message() ?? "",
    fileId: a.fileId() ?? "",
    msgId: a.msgId() ?? "",
    serverSeq: Number(a.serverSeq()),
    timestamp: Number(a.timestamp())
  };
}
function encodeFileRequest(fileId, offset = 0) {
  const b = new Builder(64 + fileId.length * 3);
  return finish(b, FileRequest.createFileRequest(b, b.createString(fileId), BigInt(offset)));
}
function decodeFileRequest(p) {
  needTable(p);
  const r = FileRequest.getRootAsFileRequest(bb(p));
  return { fileId: r.fileId() ?? "", offset: Number(r.offset()) };
}
function encodeFileHeader(h) {
  const b = new Builder(256);
  const message = optString(b, h.message), fileId = optString(b, h.fileId), name = optString(b, h.name);
  const mime = optString(b, h.mimeType);
  const sha = h.sha256 ? FileHeader.createSha256Vector(b, h.sha256) : 0;
  return finish(b, FileHeader.createFileHeader(
    b,
    h.code ?? 0,
    message,
    fileId,
    name,
    BigInt(h.size ?? 0),
    mime,
    sha,
    BigInt(h.offset ?? 0)
  ));
}
function decodeFileHeader(p) {
  needTable(p);
  const h = FileHeader.getRootAsFileHeader(bb(p));
  return {
    code: h.code(),
    message: h.message() ?? "",
    fileId: h.fileId() ?? "",
    name: h.name() ?? "",
    size: Number(h.size()),
    mimeType: h.mimeType() ?? "",
    sha256: bytesOf(h.sha256Array()),
    offset: Number(h.offset())
  };
}
var CONTENT_TYPE_FILE = 1;
function fileInfo(message) {
  if (message.contentType !== CONTENT_TYPE_FILE) return null;
  let j;
  try {
    j = JSON.parse(message.content);
  } catch {
    return null;
  }
  if (typeof j !== "object" || j === null) return null;
  const o = j;
  if (typeof o.file_id !== "string" || !o.file_id) return null;
  return {
    fileId: o.file_id,
    name: typeof o.name === "string" ? o.name : "",
    size: typeof o.size === "number" ? o.size : 0,
    mimeType: typeof o.mime_type === "string" ? o.mime_type : "",
    sha256: typeof o.sha256 === "string" ? o.sha256.toLowerCase() : ""
  };
}
function toHex(bytes) {
  return Array.from(bytes, (x) => x.toString(16).padStart(2, "0")).join("");
}

// src/sha256.ts
var K = new Uint32Array([
  1116352408,
  1899447441,
  3049323471,
  3921009573,
  961987163,
  1508970993,
  2453635748,
  2870763221,
  3624381080,
  310598401,
  607225278,
  1426881987,
  1925078388,
  2162078206,
  2614888103,
  3248222580,
  3835390401,
  4022224774,
  264347078,
  604807628,
  770255983,
  1249150122,
  1555081692,
  1996064986,
  2554220882,
  2821834349,
  2952996808,
  3210313671,
  3336571891,
  3584528711,
  113926993,
  338241895,
  666307205,
  773529912,
  1294757372,
  1396182291,
  1695183700,
  1986661051,
  2177026350,
  2456956037,
  2730485921,
  2820302411,
  3259730800,
  3345764771,
  3516065817,
  3600352804,
  4094571909,
  275423344,
  430227734,
  506948616,
  659060556,
  883997877,
  958139571,
  1322822218,
  1537002063,
  1747873779,
  1955562222,
  2024104815,
  2227730452,
  2361852424,
  2428436474,
  2756734187,
  3204031479,
  3329325298
]);
var Sha256 = class {
  h = new Uint32Array([
    1779033703,
    3144134277,
    1013904242,
    2773480762,
    1359893119,
    2600822924,
    528734635,
    1541459225
  ]);
  w = new Uint32Array(64);
  block = new Uint8Array(64);
  blockLen = 0;
  total = 0;
  done = false;
  update(data) {
    if (this.done) throw new Error("Sha256: update after digest");
    this.total += data.length;
    let pos = 0;
    if (this.blockLen > 0) {
      const n = Math.min(64 - this.blockLen, data.length);
      this.block.set(data.subarray(0, n), this.blockLen);
      this.blockLen += n;
      pos = n;
      if (this.blockLen < 64) return this;
      this.compress(this.block, 0);
      this.blockLen = 0;
    }
    for (; pos + 64 <= data.length; pos += 64) this.compress(data, pos);
    if (pos < data.length) {
      this.block.set(data.subarray(pos), 0);
      this.blockLen = data.length - pos;
    }
    return this;
  }
  digest() {
    if (this.done) throw new Error("Sha256: digest twice");
    const bits = this.total * 8;
    const pad = new Uint8Array((this.blockLen < 56 ? 64 : 128) - this.blockLen);
    pad[0] = 128;
    const view = new DataView(pad.buffer);
    view.setUint32(pad.length - 8, Math.floor(bits / 2 ** 32), false);
    view.setUint32(pad.length - 4, bits >>> 0, false);
    this.update(pad);
    this.done = true;
    const out = new Uint8Array(32);
    const ov = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) ov.setUint32(i * 4, this.h[i], false);
    return out;
  }
  compress(data, pos) {
    const w = this.w, h = this.h;
    for (let i = 0; i < 16; i++, pos += 4) {
      w[i] = data[pos] << 24 | data[pos + 1] << 16 | data[pos + 2] << 8 | data[pos + 3];
    }
    for (let i = 16; i < 64; i++) {
      const a2 = w[i - 15], b2 = w[i - 2];
      const s0 = (a2 >>> 7 | a2 << 25) ^ (a2 >>> 18 | a2 << 14) ^ a2 >>> 3;
      const s1 = (b2 >>> 17 | b2 << 15) ^ (b2 >>> 19 | b2 << 13) ^ b2 >>> 10;
      w[i] = w[i - 16] + s0 + w[i - 7] + s1 | 0;
    }
    let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (let i = 0; i < 64; i++) {
      const S1 = (e >>> 6 | e << 26) ^ (e >>> 11 | e << 21) ^ (e >>> 25 | e << 7);
      const ch = e & f ^ ~e & g;
      const t1 = hh + S1 + ch + K[i] + w[i] | 0;
      const S0 = (a >>> 2 | a << 30) ^ (a >>> 13 | a << 19) ^ (a >>> 22 | a << 10);
      const maj = a & b ^ a & c ^ b & c;
      const t2 = S0 + maj | 0;
      hh = g;
      g = f;
      f = e;
      e = d + t1 | 0;
      d = c;
      c = b;
      b = a;
      a = t1 + t2 | 0;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
  }
};
function sha256(data) {
  return new Sha256().update(data).digest();
}

// src/client.ts
var ImaccessError = class extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.code = code;
    this.name = "ImaccessError";
  }
  code;
};
var FileCode = {
  INVALID_MESSAGE: 1002,
  UNAVAILABLE: 1005,
  FILE_TOO_LARGE: 1010,
  FILE_HASH_MISMATCH: 1011,
  FILE_SIZE_MISMATCH: 1012,
  FILE_NOT_FOUND: 1013,
  TOO_MANY_TRANSFERS: 1014,
  TRANSFER_STALLED: 1015,
  NOT_SUPPORTED_ON_TRANSPORT: 1016,
  INVALID_OFFER: 1017
};
function b64ToBytes(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
function withTimeout(p, ms, what) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    p.then((v) => {
      clearTimeout(t);
      resolve(v);
    }, (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}
async function openWebTransport(url, certSha256, h, timeoutMs) {
  const options = {};
  if (certSha256) {
    options.serverCertificateHashes = [{ algorithm: "sha-256", value: b64ToBytes(certSha256) }];
  }
  const wt = new WebTransport(url, options);
  wt.closed.catch(() => void 0);
  try {
    await withTimeout(wt.ready, timeoutMs, "WebTransport handshake");
  } catch (e) {
    try {
      wt.close();
    } catch {
    }
    throw e;
  }
  let lost = false;
  const lose = (info) => {
    if (lost) return;
    lost = true;
    try {
      wt.close({ closeCode: 0, reason: "" });
    } catch {
    }
    h.lost(link, info);
  };
  const openStream = async () => {
    const stream = await wt.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    const channel = {
      write(frame) {
        writer.write(frame).catch(() => lose({ code: 0, reason: "stream write failed" }));
      }
    };
    (async () => {
      const reader = stream.readable.getReader();
      const decoder = new FrameDecoder();
      try {
        for (; ; ) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const f of decoder.push(value)) h.frame(link, f, channel);
        }
        lose({ code: 0, reason: "stream ended" });
      } catch (e) {
        lose(e instanceof FrameError ? { code: e.code, reason: e.message } : { code: 0, reason: String(e) });
      }
    })();
    return channel;
  };
  const link = {
    kind: "webtransport",
    control: null,
    message: null,
    async openMessageStream() {
      link.message = await openStream();
      return link.message;
    },
    async openUploadStream() {
      return await wt.createUnidirectionalStream();
    },
    close(code = 0, reason = "") {
      lost = true;
      try {
        wt.close({ closeCode: code, reason });
      } catch {
      }
    }
  };
  link.control = await openStream();
  const readHead = async (stream) => {
    const reader = stream.getReader();
    let buf = new Uint8Array(0);
    try {
      for (; ; ) {
        const { value, done } = await reader.read();
        if (done) return;
        const joined = new Uint8Array(buf.length + value.length);
        joined.set(buf, 0);
        joined.set(value, buf.length);
        buf = joined;
        const taken = takeFrame(buf);
        if (taken) {
          h.download(link, taken.frame, reader, buf.slice(taken.end));
          return;
        }
      }
    } catch {
      reader.cancel().catch(() => void 0);
    }
  };
  (async () => {
    const streams = wt.incomingUnidirectionalStreams.getReader();
    try {
      for (; ; ) {
        const { value, done } = await streams.read();
        if (done) return;
        void readHead(value);
      }
    } catch {
    }
  })();
  wt.closed.then(
    (info) => lose({ code: info?.closeCode ?? 0, reason: info?.reason ?? "session closed" }),
    (e) => lose({ code: 0, reason: String(e) })
  );
  return link;
}
function fromWebSocketCloseCode(code) {
  if (code >= 4500 && code <= 4699) return (Math.floor((code - 4500) / 100) + 1) * 1e3 + code % 100;
  if (code >= 3e3 && code <= 4999) return code;
  return 0;
}
async function openWebSocket(url, h, timeoutMs) {
  const ws = new WebSocket(url, ["imaccess"]);
  ws.binaryType = "arraybuffer";
  await withTimeout(new Promise((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("WebSocket failed to open"));
    ws.onclose = (ev) => reject(new Error(`WebSocket closed while opening (${ev.code})`));
  }), timeoutMs, "WebSocket open").catch((e) => {
    try {
      ws.close();
    } catch {
    }
    throw e;
  });
  let lost = false;
  const lose = (info) => {
    if (lost) return;
    lost = true;
    try {
      ws.close();
    } catch {
    }
    h.lost(link, info);
  };
  const channel = {
    write(frame) {
      if (ws.readyState === WebSocket.OPEN) ws.send(frame);
      else lose({ code: 0, reason: "socket not open" });
    }
  };
  const decoder = new FrameDecoder();
  ws.onmessage = (ev) => {
    if (!(ev.data instanceof ArrayBuffer)) return;
    try {
      for (const f of decoder.push(new Uint8Array(ev.data))) h.frame(link, f, channel);
    } catch (e) {
      lose(e instanceof FrameError ? { code: e.code, reason: e.message } : { code: 0, reason: String(e) });
    }
  };
  ws.onerror = () => void 0;
  ws.onclose = (ev) => lose({ code: fromWebSocketCloseCode(ev.code), reason: ev.reason || "socket closed" });
  const link = {
    kind: "websocket",
    control: channel,
    message: channel,
    async openMessageStream() {
      return channel;
    },
    close() {
      lost = true;
      try {
        ws.close(1e3);
      } catch {
      }
    }
  };
  return link;
}
var LinkLost = class extends Error {
};
function randomId() {
  if (typeof globalThis.crypto?.randomUUID === "function") return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}
function defaultDeviceId() {
  try {
    const key = "imaccess:device_id";
    let id = sessionStorage.getItem(key);
    if (!id) {
      id = `web-${randomId()}`;
      sessionStorage.setItem(key, id);
    }
    return id;
  } catch {
    return `web-${randomId()}`;
  }
}
var sleep = (ms) => new Promise((r) => setTimeout(r, ms));
var abortError = (signal) => signal.reason instanceof Error ? signal.reason : new DOMException("aborted", "AbortError");
var WHOLE_HASH_LIMIT = 32 * 1024 * 1024;
async function hashBlob(blob, signal) {
  if (blob.size <= WHOLE_HASH_LIMIT && globalThis.crypto?.subtle) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
  }
  const h = new Sha256();
  const reader = blob.stream().getReader();
  for (; ; ) {
    if (signal?.aborted) {
      reader.cancel().catch(() => void 0);
      throw abortError(signal);
    }
    const { value, done } = await reader.read();
    if (done) return h.digest();
    h.update(value);
  }
}
var ImaccessClient = class {
  deviceId;
  opts;
  storage;
  listeners = /* @__PURE__ */ new Map();
  link = null;
  _state = "idle";
  _transport = null;
  _auth = null;
  nextSeq = 1;
  pending = /* @__PURE__ */ new Map();
  last = 0;
  cursorKey = null;
  sentIds = /* @__PURE__ */ new Set();
  syncing = false;
  syncAgain = false;
  heartbeatTimer = null;
  lastHeard = 0;
  lastWritten = 0;
  attempt = 0;
  tokenRetries = 0;
  everConnected = false;
  webTransportBroken = false;
  inband = null;
  connectedWaiters = [];
  supervisor = null;
  wake = null;
  stopError = null;
  queue = [];
  iterators = 0;
  queueWaiters = [];
  constructor(options) {
    this.opts = {
      platform: "web",
      transport: "auto",
      ackTimeoutMs: 5e3,
      sendAttempts: 5,
      backoffBaseMs: 200,
      backoffCapMs: 3e4,
      connectTimeoutMs: 5e3,
      syncLimit: 0,
      deliverOwnEchoes: false,
      ...options
    };
    this.deviceId = options.deviceId || defaultDeviceId();
    this.storage = options.storage !== void 0 ? options.storage : typeof localStorage !== "undefined" ? localStorage : null;
  }
  /** The transport of the current connection (null when not connected). */
  get transport() {
    return this._transport;
  }
  get state() {
    return this._state;
  }
  get auth() {
    return this._auth;
  }
  get userId() {
    return this._auth?.userId ?? null;
  }
  /** The cursor: the highest inbox seq handed to the application. */
  get lastSeq() {
    return this.last;
  }
  on(event, fn) {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, set = /* @__PURE__ */ new Set());
    set.add(fn);
    return () => set.delete(fn);
  }
  emit(event, value) {
    for (const fn of this.listeners.get(event) ?? []) {
      try {
        fn(value);
      } catch (e) {
        console.error(e);
      }
    }
  }
  log(line) {
    this.opts.log?.(line);
    this.emit("log", line);
  }
  setState(s) {
    if (this._state === s) return;
    this._state = s;
    this.emit("state", s);
  }
  /** Connect (and keep reconnecting). Resolves after the first AuthAck; rejects if it stops first. */
  connect() {
    if (this._state === "stopped") return Promise.reject(this.stopError);
    const ready = this.whenConnected();
    if (!this.supervisor) this.supervisor = this.supervise();
    return ready;
  }
  /** Incoming messages as an async iterator (ends when the client stops). */
  async *messages() {
    this.iterators++;
    try {
      for (; ; ) {
        if (this._state === "stopped" && this.queue.length === 0) return;
        const m = this.queue.shift() ?? await new Promise((r) => this.queueWaiters.push(r));
        if (m === null) return;
        yield m;
      }
    } finally {
      this.iterators--;
    }
  }
  /** Send a text message; resolves with the MessageAck (code 0). Retries with the same msg_id. */
  async send(to, content, opts = {}) {
    const msgId = opts.msgId ?? randomId();
    this.rememberSent(msgId);
    const payload = encodeChat(msgId, to, content, opts.contentType ?? 0);
    let lastError = new Error("not sent");
    for (let attempt = 0; attempt < this.opts.sendAttempts; attempt++) {
      if (attempt > 0) this.log(`resend ${msgId} (attempt ${attempt + 1}): ${lastError.message}`);
      try {
        await this.whenConnected();
        const reply = await this.request(10 /* Message */, payload, this.opts.ackTimeoutMs);
        if (reply.type === 31 /* Error */) {
          const e = decodeError(reply.payload);
          throw new ImaccessError(e.code, e.message);
        }
        const ack = decodeMessageAck(reply.payload);
        this.emit("ack", ack);
        if (ack.code === 0) return ack;
        if (ack.code === 1003 || ack.code === 1005) {
          lastError = new ImaccessError(ack.code, "not accepted yet");
          await sleep(this.backoff(attempt));
          continue;
        }
        throw new ImaccessError(ack.code, `message ${msgId} refused`);
      } catch (e) {
        if (e instanceof ImaccessError) throw e;
        lastError = e;
      }
    }
    throw new ImaccessError(1005, `no ack for ${msgId}: ${lastError.message}`);
  }
  /**
   * Upload a file to `toUser` on its own WebTransport unidirectional stream (PROTOCOL.md
   * "Files"): one FileOffer frame, the content, FIN. Resolves on the FileAck (code 0), when
   * the chat message announcing the file (contentType 1, see `fileInfo`) has been stored.
   * Rejects with an ImaccessError carrying the refusal's code; at once with 1016
   * NOT_SUPPORTED_ON_TRANSPORT over WebSocket; with the signal's reason when aborted (the
   * stream is reset, the server keeps nothing). Not retried: call again (same msgId) to retry.
   */
  async sendFile(toUser, file, opts = {}) {
    const { signal } = opts;
    const notSupported = () => new ImaccessError(
      FileCode.NOT_SUPPORTED_ON_TRANSPORT,
      `files need WebTransport streams; this connection is ${this._transport}`
    );
    if (signal?.aborted) throw abortError(signal);
    if (this._state === "connected" && !this.link?.openUploadStream) throw notSupported();
    const digest = await hashBlob(file, signal);
    if (signal?.aborted) throw abortError(signal);
    await this.whenConnected();
    const link = this.link;
    if (!link?.openUploadStream) throw notSupported();
    const msgId = opts.msgId ?? randomId();
    const name = opts.name || file.name || "file";
    const mimeType = opts.mimeType ?? file.type ?? "";
    const size = file.size;
    const offer = encodeFileOffer({ msgId, toUser, name, size, mimeType, sha256: digest });
    this.rememberSent(msgId);
    const writable = await link.openUploadStream();
    if (this.link !== link) {
      writable.abort().catch(() => void 0);
      throw new LinkLost("connection lost before the upload started");
    }
    const writer = writable.getWriter();
    const seq = this.nextSeq++;
    const ack = this.expect(seq);
    let answered = false;
    const untilAnswered = ack.reply.then(() => {
      answered = true;
    }, () => {
      answered = true;
    });
    let aborted = false;
    const onAbort = () => {
      aborted = true;
      writer.abort(signal.reason).catch(() => void 0);
      ack.cancel(abortError(signal));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      let writeError = null;
      try {
        await Promise.race([writer.ready, untilAnswered]);
        await writer.write(encodeFrame(40 /* FileOffer */, seq, offer, Date.now()));
        this.lastWritten = Date.now();
        const reader = file.stream().getReader();
        let sent = 0;
        try {
          while (!aborted && !answered) {
            const { value, done } = await reader.read();
            if (done) break;
            await Promise.race([writer.ready, untilAnswered]);
            if (aborted || answered) break;
            await writer.write(value);
            sent += value.length;
            opts.onProgress?.(sent, size);
          }
        } finally {
          reader.cancel().catch(() => void 0);
        }
        if (!aborted && !answered) {
          const closing = writer.close();
          closing.catch(() => void 0);
          await Promise.race([closing, untilAnswered]);
        } else if (!aborted) {
          writer.abort().catch(() => void 0);
        }
      } catch (e) {
        writeError = e;
      }
      if (aborted) throw abortError(signal);
      ack.arm(this.opts.ackTimeoutMs * 2, "FileAck");
      let frame;
      try {
        frame = (await ack.reply).frame;
      } catch (e) {
        if (aborted) throw abortError(signal);
        throw writeError ?? e;
      }
      if (frame.type === 31 /* Error */) {
        const e = decodeError(frame.payload);
        throw new ImaccessError(e.code, e.message);
      }
      if (frame.type !== 41 /* FileAck */) throw new ImaccessError(4003, `unexpected reply ${frame.type} to FileOffer`);
      const a = decodeFileAck(frame.payload);
      if (a.code !== 0) throw new ImaccessError(a.code, a.message || `file ${name} refused`);
      return {
        fileId: a.fileId,
        msgId: a.msgId || msgId,
        serverSeq: a.serverSeq,
        timestamp: a.timestamp,
        name,
        size,
        mimeType,
        sha256: toHex(digest)
      };
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }
  /**
   * Download a file (by the `fileId` of its message, see `fileInfo`): a FileRequest, then the
   * server's unidirectional stream with a FileHeader and the content. The SHA-256 of the whole
   * file is checked when `offset` is 0 (else 1011 FILE_HASH_MISMATCH); a refusal rejects with
   * its code (1013 not found, 1016 over WebSocket, ...).
   */
  async fetchFile(fileId, opts = {}) {
    const { signal } = opts;
    if (signal?.aborted) throw abortError(signal);
    await this.whenConnected();
    const seq = this.nextSeq++;
    const reply = this.expect(seq, true);
    let reader = null;
    const onAbort = () => {
      reply.cancel(abortError(signal));
      reader?.cancel(signal.reason).catch(() => void 0);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      try {
        this.write(42 /* FileRequest */, seq, encodeFileRequest(fileId, opts.offset ?? 0));
      } catch (e) {
        reply.cancel(e);
      }
      reply.arm(this.opts.ackTimeoutMs * 2, "FileHeader");
      const { frame, stream } = await reply.reply;
      if (frame.type === 31 /* Error */) {
        const e = decodeError(frame.payload);
        throw new ImaccessError(e.code, e.message);
      }
      if (frame.type !== 43 /* FileHeader */) throw new ImaccessError(4003, `unexpected reply ${frame.type} to FileRequest`);
      const h = decodeFileHeader(frame.payload);
      if (h.code !== 0 || !stream) {
        stream?.reader.cancel().catch(() => void 0);
        throw new ImaccessError(h.code || 4003, h.message || `file ${fileId} refused`);
      }
      reader = stream.reader;
      const want = h.size - h.offset;
      const hash = h.offset === 0 ? new Sha256() : null;
      const chunks = [];
      let received = 0;
      const take = (chunk) => {
        if (!chunk.length) return;
        chunks.push(chunk);
        hash?.update(chunk);
        received += chunk.length;
        opts.onProgress?.(h.offset + received, h.size);
      };
      take(stream.rest);
      for (; ; ) {
        if (signal?.aborted) throw abortError(signal);
        if (received > want) break;
        const { value, done } = await reader.read();
        if (done) break;
        take(value);
      }
      if (signal?.aborted) throw abortError(signal);
      if (received !== want) {
        reader.cancel().catch(() => void 0);
        throw new ImaccessError(FileCode.FILE_SIZE_MISMATCH, `file ${fileId}: ${received} bytes after offset ${h.offset}, expected ${want}`);
      }
      const sha2562 = toHex(h.sha256);
      if (hash && toHex(hash.digest()) !== sha2562) {
        throw new ImaccessError(FileCode.FILE_HASH_MISMATCH, `file ${fileId}: SHA-256 differs from the header's`);
      }
      return {
        fileId: h.fileId || fileId,
        name: h.name,
        mimeType: h.mimeType,
        size: h.size,
        sha256: sha2562,
        offset: h.offset,
        data: new Blob(chunks, { type: h.mimeType })
      };
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }
  /** Sync from the cursor until there is nothing more (also done after every connect). */
  async sync() {
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.syncing = true;
    try {
      let more = true;
      while (more) {
        this.syncAgain = false;
        const since = this.last;
        const reply = await this.request(20 /* Sync */, encodeSync(since, this.opts.syncLimit), this.opts.ackTimeoutMs * 2);
        if (reply.type !== 21 /* SyncAck */) throw new Error(`unexpected reply ${reply.type} to Sync`);
        const page = decodeSyncResponse(reply.payload);
        if (page.code !== 0) {
          this.log(`sync refused (${page.code}); retrying`);
          await sleep(this.backoff(1));
          continue;
        }
        if (page.maxSeq < since) {
          this.log(`server inbox reset (max_seq ${page.maxSeq} < ${since}); syncing from 0`);
          this.setCursor(0);
          continue;
        }
        for (const m of page.messages) if (m.seq > this.last) this.deliver(m);
        more = page.hasMore || this.syncAgain;
      }
    } finally {
      this.syncing = false;
    }
  }
  /** Close for good. */
  close() {
    this.stop(new ImaccessError(0, "closed by the application"), false);
  }
  // ---- internals ---------------------------------------------------------------------
  whenConnected() {
    if (this._state === "connected") return Promise.resolve();
    if (this._state === "stopped") return Promise.reject(this.stopError);
    return new Promise((resolve, reject) => this.connectedWaiters.push({ resolve, reject }));
  }
  backoff(attempt) {
    return Math.random() * Math.min(this.opts.backoffCapMs, this.opts.backoffBaseMs * 2 ** attempt);
  }
  stop(error, emit = true) {
    if (this._state === "stopped") return;
    this.stopError = error;
    this.setState("stopped");
    this.teardown(new LinkLost("stopped"));
    for (const w of this.connectedWaiters.splice(0)) w.reject(error);
    for (const w of this.queueWaiters.splice(0)) w(null);
    this.wake?.();
    if (emit) this.emit("stopped", error);
  }
  teardown(reason) {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    const link = this.link;
    this.link = null;
    this._transport = null;
    if (link) {
      link.close();
      this.linkEnders.get(link)?.({ code: 0, reason: reason.message });
    }
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(reason);
    }
    this.pending.clear();
  }
  async supervise() {
    while (this._state !== "stopped") {
      this.setState(this.everConnected ? "reconnecting" : "connecting");
      this.inband = null;
      let lostInfo;
      try {
        lostInfo = await this.runOnce();
      } catch (e) {
        lostInfo = e instanceof ImaccessError ? { code: e.code, reason: e.message } : { code: 0, reason: String(e?.message ?? e) };
      }
      if (this._state === "stopped") return;
      const info = this.inband ?? lostInfo;
      this.teardown(new LinkLost(info.reason));
      this.emit("disconnected", info);
      this.log(`disconnected: ${info.code} ${info.reason}`);
      const range = Math.floor(info.code / 1e3);
      if (range === 4) {
        this.stop(new ImaccessError(info.code, info.reason));
        return;
      }
      if (range === 2) {
        if (typeof this.opts.token === "function" && this.everConnected && this.tokenRetries < 3) {
          this.tokenRetries++;
        } else {
          this.stop(new ImaccessError(info.code, info.reason));
          return;
        }
      }
      const delay = info.reconnectAfterMs ?? this.backoff(this.attempt);
      this.attempt++;
      this.log(`reconnecting in ${Math.round(delay)} ms`);
      await new Promise((r) => {
        this.wake = r;
        setTimeout(r, delay);
      });
      this.wake = null;
    }
  }
  /** One connection: open, authenticate, sync; resolves with why it ended. */
  async runOnce() {
    const config = typeof this.opts.config === "string" ? await (await fetch(this.opts.config, { cache: "no-store" })).json() : this.opts.config;
    const token = typeof this.opts.token === "function" ? await this.opts.token() : this.opts.token;
    let ended;
    const endedP = new Promise((r) => {
      ended = r;
    });
    const handlers = {
      frame: (link2, f, ch) => {
        if (link2 === this.link) this.onFrame(f, ch);
      },
      lost: (link2, info) => {
        if (link2 === this.link || this.link === null) ended(info);
      },
      download: (link2, f, reader, rest) => {
        if (link2 === this.link) this.onDownloadStream(f, { reader, rest });
        else reader.cancel().catch(() => void 0);
      }
    };
    const link = await this.openLink(config, handlers);
    this.linkEnders.set(link, ended);
    this.link = link;
    this._transport = link.kind;
    this.nextSeq = 1;
    this.lastHeard = Date.now();
    const authReply = await Promise.race([
      this.request(1 /* Auth */, encodeAuth(token, this.deviceId, this.opts.platform), 1e4, link.control),
      endedP.then((info) => {
        throw new ImaccessError(info.code, info.reason);
      })
    ]);
    if (authReply.type !== 2 /* AuthAck */) throw new ImaccessError(4003, `unexpected reply ${authReply.type} to Auth`);
    const auth = decodeAuthResponse(authReply.payload);
    if (auth.code !== 0) {
      this.inband = { code: auth.code, reason: auth.message };
      throw new ImaccessError(auth.code, auth.message);
    }
    this._auth = auth;
    this.loadCursor(auth.userId);
    if (link.kind === "webtransport") {
      const ch = await link.openMessageStream();
      this.write(0 /* Heartbeat */, this.nextSeq++, void 0, ch);
    }
    this.attempt = 0;
    this.tokenRetries = 0;
    this.everConnected = true;
    this.startHeartbeat(auth.heartbeatIntervalMs || 3e4);
    this.setState("connected");
    this.log(`connected over ${link.kind} as user ${auth.userId} (conn ${auth.connId} on ${auth.nodeId})`);
    this.emit("connected", { transport: link.kind, auth });
    for (const w of this.connectedWaiters.splice(0)) w.resolve();
    this.sync().catch((e) => this.log(`sync failed: ${e.message}`));
    return endedP;
  }
  async openLink(config, h) {
    const hasWT = typeof WebTransport !== "undefined" && !!config.webtransport_url;
    const mode = this.opts.transport;
    if (mode === "webtransport" || mode === "auto" && hasWT && !this.webTransportBroken) {
      try {
        return await openWebTransport(config.webtransport_url, config.cert_sha256, h, this.opts.connectTimeoutMs);
      } catch (e) {
        if (mode === "webtransport" || !config.websocket_url) throw e;
        this.log(`WebTransport failed (${e.message}); falling back to WebSocket`);
        this.webTransportBroken = true;
      }
    }
    if (!config.websocket_url) throw new Error("no websocket_url in the server config");
    return openWebSocket(config.websocket_url, h, this.opts.connectTimeoutMs);
  }
  loadCursor(userId) {
    const key = `imaccess:last_seq:${userId}:${this.deviceId}`;
    if (key === this.cursorKey) return;
    this.cursorKey = key;
    const stored = Number(this.storage?.getItem(key) ?? 0);
    this.last = Number.isFinite(stored) && stored > 0 ? stored : 0;
  }
  setCursor(seq) {
    this.last = seq;
    if (this.cursorKey) try {
      this.storage?.setItem(this.cursorKey, String(seq));
    } catch {
    }
  }
  deliver(m) {
    this.setCursor(m.seq);
    const own = m.fromUser === this._auth?.userId && this.sentIds.has(m.msgId);
    if (own && !this.opts.deliverOwnEchoes) return;
    this.emit("message", m);
    if (this.iterators === 0) return;
    const waiter = this.queueWaiters.shift();
    if (waiter) waiter(m);
    else this.queue.push(m);
  }
  rememberSent(msgId) {
    this.sentIds.add(msgId);
    if (this.sentIds.size > 1e4) this.sentIds.delete(this.sentIds.values().next().value);
  }
  write(type, seq, payload, channel) {
    const link = this.link;
    if (!link) throw new LinkLost("not connected");
    (channel ?? link.message ?? link.control).write(encodeFrame(type, seq, payload, Date.now()));
    this.lastWritten = Date.now();
  }
  request(type, payload, timeoutMs, channel) {
    return new Promise((resolve, reject) => {
      if (!this.link) {
        reject(new LinkLost("not connected"));
        return;
      }
      const seq = this.nextSeq++;
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        reject(new Error(`no reply to ${MsgType[type] ?? type} seq ${seq} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(seq, { resolve, reject, timer });
      try {
        this.write(type, seq, payload, channel);
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(seq);
        reject(e);
      }
    });
  }
  /** Wait for the reply with `seq` (no timer until `arm`); `cancel` forgets it. */
  expect(seq, download = false) {
    let resolve;
    let reject;
    const reply = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    reply.catch(() => void 0);
    const p = { resolve: (frame, stream) => resolve({ frame, stream }), reject, timer: void 0, download };
    this.pending.set(seq, p);
    return {
      reply,
      arm: (ms, what) => {
        if (this.pending.get(seq) !== p) return;
        clearTimeout(p.timer);
        p.timer = setTimeout(() => {
          if (this.pending.get(seq) === p) this.pending.delete(seq);
          reject(new Error(`no ${what} for seq ${seq} in ${ms} ms`));
        }, ms);
      },
      cancel: (e) => {
        if (this.pending.get(seq) === p) {
          this.pending.delete(seq);
          clearTimeout(p.timer);
        }
        reject(e);
      }
    };
  }
  onDownloadStream(f, stream) {
    this.lastHeard = Date.now();
    const p = f.seq !== 0 ? this.pending.get(f.seq) : void 0;
    if (!p?.download || f.type !== 43 /* FileHeader */) {
      this.log(`unexpected download stream (type ${f.type}, seq ${f.seq}); stopping it`);
      stream.reader.cancel().catch(() => void 0);
      return;
    }
    this.pending.delete(f.seq);
    clearTimeout(p.timer);
    p.resolve(f, stream);
  }
  startHeartbeat(intervalMs) {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    const link = this.link;
    this.heartbeatTimer = setInterval(() => {
      if (this.link !== link) return;
      if (Date.now() - this.lastHeard > 3 * intervalMs) {
        this.log("nothing heard for 3 heartbeat intervals; reconnecting");
        link.close();
        this.inband = { code: 0, reason: "heartbeat lost" };
        this.linkLostNow(link, { code: 0, reason: "heartbeat lost" });
        return;
      }
      try {
        this.write(0 /* Heartbeat */, this.nextSeq++, void 0, link.control);
      } catch {
      }
    }, intervalMs);
  }
  linkEnders = /* @__PURE__ */ new WeakMap();
  linkLostNow(link, info) {
    this.linkEnders.get(link)?.(info);
  }
  onFrame(f, channel) {
    this.lastHeard = Date.now();
    if (f.seq !== 0) {
      const p = this.pending.get(f.seq);
      if (p && f.type !== 0 /* Heartbeat */) {
        this.pending.delete(f.seq);
        clearTimeout(p.timer);
        p.resolve(f);
        return;
      }
      if (f.type === 0 /* Heartbeat */) return;
    }
    try {
      switch (f.type) {
        case 0 /* Heartbeat */:
          return;
        case 10 /* Message */:
          return this.onPush(decodeChat(f.payload));
        case 30 /* Kick */: {
          const k = decodeKick(f.payload);
          this.log(`kick ${k.code}: ${k.reason}`);
          this.inband = { code: k.code, reason: k.reason };
          return;
        }
        case 31 /* Error */: {
          const e = decodeError(f.payload);
          this.log(`error ${e.code}: ${e.message}`);
          if (f.seq === 0) this.inband = { code: e.code, reason: e.message };
          return;
        }
        case 41 /* FileAck */: {
          const a = decodeFileAck(f.payload);
          this.log(`FileAck ${a.code} (${a.message}) for no running upload (seq ${f.seq})`);
          return;
        }
        case 32 /* Notice */: {
          const n = decodeNotice(f.payload);
          this.emit("notice", n);
          if (n.kind === 1) {
            this.inband = { code: n.code || 3001, reason: n.message || "draining", reconnectAfterMs: n.reconnectAfterMs };
          }
          return;
        }
        default:
          this.log(`ignored frame type ${f.type} seq ${f.seq} on ${channel === this.link?.control ? "control" : "message"}`);
      }
    } catch (e) {
      this.log(`bad frame: ${e.message}`);
    }
  }
  onPush(m) {
    if (m.delivery === 2 /* Broadcast */) {
      this.emit("broadcast", m);
      return;
    }
    if (m.seq === this.last + 1) this.deliver(m);
    else if (m.seq <= this.last) return;
    else {
      this.log(`gap: got seq ${m.seq}, have ${this.last}; syncing`);
      this.sync().catch((e) => this.log(`sync failed: ${e.message}`));
    }
  }
};
export {
  CONTENT_TYPE_FILE,
  Delivery,
  FileCode,
  FrameDecoder,
  FrameError,
  HEADER_SIZE,
  ImaccessClient,
  ImaccessError,
  MAX_FRAME_SIZE,
  MsgType,
  NoticeKind,
  Sha256,
  decodeAuthResponse,
  decodeBody,
  decodeChat,
  decodeError,
  decodeFileAck,
  decodeFileHeader,
  decodeFileOffer,
  decodeFileRequest,
  decodeKick,
  decodeMessageAck,
  decodeNotice,
  decodeSyncResponse,
  encodeAuth,
  encodeChat,
  encodeFileAck,
  encodeFileHeader,
  encodeFileOffer,
  encodeFileRequest,
  encodeFrame,
  encodeSync,
  fileInfo,
  fromWebSocketCloseCode,
  sha256,
  takeFrame,
  toHex
};
