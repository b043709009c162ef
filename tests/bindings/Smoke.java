/**
 * What a Kotlin or Java binding does: load a JNI shim linked against libmoqt.so and call through
 * it. The shim (smoke_jni.c) runs an embedded relay, publishes a frame and reads it back in pull
 * mode; the payload must come back byte for byte.
 */
public final class Smoke {
    static {
        System.loadLibrary("moqt_smoke_jni");
    }

    static native String version();

    static native byte[] roundTrip(byte[] payload);

    public static void main(String[] args) {
        byte[] sent = "hello from the JVM".getBytes(java.nio.charset.StandardCharsets.UTF_8);
        byte[] got = roundTrip(sent);
        if (got == null || !java.util.Arrays.equals(sent, got)) {
            System.err.println("jni: FAILED: the frame did not come back");
            System.exit(1);
        }
        System.out.println("jni: ok (moqt " + version() + ", " + got.length + " bytes round trip)");
    }
}
