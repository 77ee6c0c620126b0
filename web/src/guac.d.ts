// Minimal typings for the parts of guacamole-common-js 1.5.0 this client uses.
declare module 'guacamole-common-js' {
  namespace Guacamole {
    interface Status { code: number; message?: string; isError(): boolean }
    interface Tunnel {
      state: number;
      uuid: string | null;
      onerror: ((status: Status) => void) | null;
      onstatechange: ((state: number) => void) | null;
      onuuid: ((uuid: string) => void) | null;
      oninstruction: ((opcode: string, args: string[]) => void) | null;
      connect(data?: string): void;
      disconnect(): void;
      sendMessage(...elements: unknown[]): void;
      isConnected(): boolean;
    }
    interface Layer { width: number; height: number; getCanvas(): HTMLCanvasElement }
    interface Display {
      getElement(): HTMLElement;
      getWidth(): number;
      getHeight(): number;
      getDefaultLayer(): Layer;
      scale(scale: number): void;
      getScale(): number;
      flatten(): HTMLCanvasElement;
      showCursor(shown: boolean): void;
      onresize: ((width: number, height: number) => void) | null;
      oncursor: ((canvas: HTMLCanvasElement, x: number, y: number) => void) | null;
    }
    interface InputStream { index: number }
    interface OutputStream { index: number }
    interface MouseState { x: number; y: number; left: boolean; middle: boolean; right: boolean; up: boolean; down: boolean }
    interface MouseEvent { state: MouseState }
    interface Client {
      connect(data?: string): void;
      disconnect(): void;
      getDisplay(): Display;
      sendSize(width: number, height: number): void;
      sendKeyEvent(pressed: 0 | 1 | boolean, keysym: number): void;
      sendMouseState(state: MouseState, applyDisplayScale?: boolean): void;
      createClipboardStream(mimetype: string): OutputStream;
      onstatechange: ((state: number) => void) | null;
      onerror: ((status: Status) => void) | null;
      onname: ((name: string) => void) | null;
      onclipboard: ((stream: InputStream, mimetype: string) => void) | null;
      onrequired: ((params: string[]) => void) | null;
    }
    interface Parser { oninstruction: ((opcode: string, args: string[]) => void) | null; receive(packet: string): void }
    interface StringReader { ontext: ((text: string) => void) | null; onend: (() => void) | null }
    interface StringWriter { sendText(text: string): void; sendEnd(): void }
    interface MouseTarget { onEach(types: string[], listener: (e: MouseEvent) => void): void }
    interface Keyboard {
      onkeydown: ((keysym: number) => boolean | void) | null;
      onkeyup: ((keysym: number) => void) | null;
      reset(): void;
    }
    interface SessionRecording {
      connect(data?: string): void;
      disconnect(): void;
      abort(): void;
      getDisplay(): Display;
      isPlaying(): boolean;
      getPosition(): number;
      getDuration(): number;
      play(): void;
      pause(): void;
      seek(position: number, callback?: () => void): void;
      onload: (() => void) | null;
      onerror: ((message: string) => void) | null;
      onprogress: ((duration: number, parsedSize: number) => void) | null;
      onplay: (() => void) | null;
      onpause: (() => void) | null;
      onseek: ((position: number, current?: number, total?: number) => void) | null;
    }
  }
  interface GuacamoleStatic {
    Status: new (code: number, message?: string) => Guacamole.Status;
    Client: new (tunnel: Guacamole.Tunnel) => Guacamole.Client;
    WebSocketTunnel: new (url: string) => Guacamole.Tunnel;
    HTTPTunnel: new (url: string, crossDomain?: boolean, headers?: Record<string, string>) => Guacamole.Tunnel;
    ChainedTunnel: new (...tunnels: Guacamole.Tunnel[]) => Guacamole.Tunnel;
    Keyboard: new (element: Document | HTMLElement) => Guacamole.Keyboard;
    Mouse: (new (element: HTMLElement) => Guacamole.MouseTarget) & {
      Touchscreen: new (element: HTMLElement) => Guacamole.MouseTarget;
    };
    StringReader: new (stream: Guacamole.InputStream) => Guacamole.StringReader;
    StringWriter: new (stream: Guacamole.OutputStream) => Guacamole.StringWriter;
    SessionRecording: new (source: Blob | Guacamole.Tunnel) => Guacamole.SessionRecording;
    Parser: new () => Guacamole.Parser;
    AudioPlayer: { getSupportedTypes(): string[] };
    VideoPlayer: { getSupportedTypes(): string[] };
  }
  const Guacamole: GuacamoleStatic;
  export default Guacamole;
}
