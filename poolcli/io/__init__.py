"""Files and streams ⇄ arrays: the one format table (``formats``), sources sniffed by their bytes
(``sources``), pictures through Pillow (``pictures``) with its settings held only while decoding
(``pillow``) and its decoders' noise captured (``noise``), arrays (``arrays``), the public
``read_header``/``load_image`` (``reading``), writers with the atomic write (``writing``), and
stage specs with the files they name (``specs``)."""
