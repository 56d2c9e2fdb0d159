// placeholder: being written
export const handler = async (): Promise<void> => undefined;
